# Entry points. `make demo` and `make test` work on a fresh Debian 12 machine.
JOBS ?= 2
BUILD ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
RUNS ?= 1000000

.PHONY: all deps build demo test fuzz-build fuzz-ci fuzz bench format clean

all: build

deps:
	bash scripts/install-deps.sh

# Release build (used by the demo and the benchmarks).
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	bash deploy/local/demo.sh $(BUILD)

# Test build: ASan + UBSan, then every test through ctest; then the bounded fuzz run.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=ON
	cmake --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest -j2 --output-on-failure --timeout 600
	$(MAKE) fuzz-ci

# libFuzzer targets (tests/fuzz/README.md): a clang tree of their own, ASan + UBSan + coverage,
# holding only the fuzz targets and the modules they fuzz.
fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=ON \
	  -DWEIR_FUZZ=ON -DWEIR_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target weir_fuzzers

# What CI runs (part of `make test`): every target for WEIR_FUZZ_RUNS executions (100000).
fuzz-ci: fuzz-build
	cd $(FUZZ_BUILD) && ctest -L fuzz --output-on-failure --timeout 600
	cat $(FUZZ_BUILD)/fuzz/*.work/summary

# A longer run: `make fuzz RUNS=1000000` (the default) runs every target that many times.
fuzz: fuzz-build
	cd $(FUZZ_BUILD) && WEIR_FUZZ_RUNS=$(RUNS) ctest -L fuzz --output-on-failure
	cat $(FUZZ_BUILD)/fuzz/*.work/summary

bench: build
	bash bench/run.sh all

format:
	find include common runtime state jobmanager taskmanager connectors cli examples tests bench \
	  -name '*.[ch]' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
