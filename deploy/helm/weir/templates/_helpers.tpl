{{/*
Names and labels of the weir chart. fullname is the release name when it contains the chart
name (release "weir" -> weir-jobmanager, as deploy/kubernetes/), else <release>-weir.
*/}}
{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "weir.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "weir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; the component label is added where there is one. */}}
{{- define "weir.labels" -}}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "weir.chart" . }}
{{- end }}

{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "weir.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- end }}

{{- define "weir.secretName" -}}
{{- default (printf "%s-secrets" (include "weir.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "weir.claimName" -}}
{{- default (printf "%s-data" (include "weir.fullname" .)) .Values.storage.existingClaim }}
{{- end }}

{{/*
weir.yaml (the ConfigMap's only key): the keys of deploy/kubernetes/configmap.yaml, then
.Values.config over them. Rendered sorted by key.
*/}}
{{/* taskmanager.memory.process.size: the task manager container's memory limit (NMi or NGi), so
the budget the task manager keeps to is the limit Kubernetes enforces. */}}
{{- define "weir.tmProcessSize" -}}
{{- $lim := toString .Values.taskManager.resources.limits.memory }}
{{- if regexMatch "^[0-9]+Mi$" $lim }}{{ regexReplaceAll "Mi$" $lim "mb" }}
{{- else if regexMatch "^[0-9]+Gi$" $lim }}{{ regexReplaceAll "Gi$" $lim "gb" }}
{{- else }}{{ fail (printf "taskManager.resources.limits.memory %q: give it as NMi or NGi (it is also taskmanager.memory.process.size)" $lim) }}
{{- end }}
{{- end }}

{{- define "weir.config" -}}
{{- $fullname := include "weir.fullname" . }}
{{- $c := dict
  "jobmanager.rpc.address" (printf "%s-jobmanager" $fullname)
  "jobmanager.rpc.port" 6123
  "jobmanager.bind-host" "0.0.0.0"
  "rest.bind-address" "0.0.0.0"
  "rest.port" 8081
  "rest.auth.token-file" "/etc/weir/secrets/rest-token"
  "security.curve.key-file" "/etc/weir/secrets/cluster.key"
  "taskmanager.bind-host" "0.0.0.0"
  "taskmanager.data.port" 6121
  "taskmanager.numberOfTaskSlots" (int .Values.slots)
  "taskmanager.working-dir" "/tmp/weir-tm"
  "taskmanager.memory.process.size" (include "weir.tmProcessSize" .)
  "blob.storage.directory" "/var/lib/weir/blobs"
  "state.checkpoints.dir" "/var/lib/weir/checkpoints"
  "state.savepoints.dir" "/var/lib/weir/savepoints"
  "high-availability.storageDir" "/var/lib/weir/ha"
  "high-availability.cluster-id" .Values.clusterId
  "jobmanager.shutdown.savepoint" .Values.shutdownSavepoint.enabled
}}
{{- with .Values.checkpoint.interval }}
{{- $_ := set $c "execution.checkpointing.interval" . }}
{{- end }}
{{- if .Values.shutdownSavepoint.enabled }}
{{- $_ := set $c "jobmanager.shutdown.savepoint-timeout" (printf "%ds" (int .Values.shutdownSavepoint.timeoutSeconds)) }}
{{- end }}
{{- if not (kindIs "invalid" .Values.parallelism) }}
{{- $_ := set $c "parallelism.default" (int .Values.parallelism) }}
{{- end }}
{{- range $k, $v := .Values.config }}
{{- $_ := set $c $k $v }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The job manager's arguments: -c, then in application mode the job. */}}
{{- define "weir.jobmanagerArgs" -}}
{{- $a := list "-c" "/etc/weir/weir.yaml" }}
{{- with .Values.job }}
{{- if .plugin }}
{{- $a = concat $a (list "-D" (printf "application.plugin=%s" .plugin)) }}
{{- with .id }}
{{- $a = concat $a (list "-D" (printf "application.job-id=%s" .)) }}
{{- end }}
{{- with .savepointPath }}
{{- $a = concat $a (list "-D" (printf "execution.savepoint.path=%s" .)) }}
{{- end }}
{{- if .allowNonRestoredState }}
{{- $a = concat $a (list "-D" "execution.savepoint.ignore-unclaimed-state=true") }}
{{- end }}
{{- $a = concat $a (list "--") }}
{{- range .args }}
{{- $a = append $a (toString .) }}
{{- end }}
{{- else if or .args .savepointPath .id }}
{{- fail "job.args, job.savepointPath and job.id need job.plugin (application mode); unset them for a session cluster" }}
{{- end }}
{{- end }}
{{- toJson $a }}
{{- end }}

{{/* Pod securityContext and container securityContext (docs/kubernetes.md). */}}
{{- define "weir.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 9999
runAsGroup: 9999
fsGroup: 9999
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "weir.securityContext" -}}
runAsNonRoot: true
runAsUser: 9999
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "weir.volumeMounts" -}}
- name: config
  mountPath: /etc/weir/weir.yaml
  subPath: weir.yaml
  readOnly: true
- name: secrets
  mountPath: /etc/weir/secrets
  readOnly: true
- name: data
  mountPath: /var/lib/weir
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "weir.volumes" -}}
- name: config
  configMap:
    name: {{ include "weir.fullname" . }}-config
- name: secrets
  secret:
    secretName: {{ include "weir.secretName" . }}
    defaultMode: 0400 # readable by uid 9999 through fsGroup (0440 root:9999)
- name: data
  persistentVolumeClaim:
    claimName: {{ include "weir.claimName" . }}
- name: tmp
  emptyDir: {}
{{- end }}

{{/* Pod scheduling and pull secrets shared by both Deployments. */}}
{{- define "weir.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
