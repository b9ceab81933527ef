/* Compact JSON members as weir's nexmark JSON writer prints them: ,"key":value with no spaces;
 * strings escaped as JSON requires (the generator only makes printable ASCII).
 * Threading: stateless. */
package weir.bench;

final class Json {
    private Json() {}

    static void num(StringBuilder s, String key, long v) {
        s.append(",\"").append(key).append("\":").append(v);
    }

    static void str(StringBuilder s, String key, String v) {
        s.append(",\"").append(key).append("\":\"");
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c == '"' || c == '\\')
                s.append('\\').append(c);
            else if (c < 0x20)
                s.append(String.format("\\u%04x", (int) c));
            else
                s.append(c);
        }
        s.append('"');
    }
}
