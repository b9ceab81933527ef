# Entry points. `make demo` and `make test` work on a fresh Debian 12 machine.
JOBS ?= 2
BUILD ?= build
TEST_BUILD ?= build-test

.PHONY: all deps build demo test bench format clean

all: build

deps:
	bash scripts/install-deps.sh

# Release build (used by the demo and the benchmarks).
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	bash deploy/local/demo.sh $(BUILD)

# Test build: ASan + UBSan, then every test through ctest.
test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=ON
	cmake --build $(TEST_BUILD) -j$(JOBS)
	cd $(TEST_BUILD) && ctest -j2 --output-on-failure --timeout 600

bench: build
	bash bench/run.sh all

format:
	find include common runtime state jobmanager taskmanager connectors cli examples tests bench \
	  -name '*.[ch]' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
