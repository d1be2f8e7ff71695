# Thin wrapper so the README's commands work on a fresh Debian machine: installs what is missing
# (apt-get only when something is), configures and builds with CMake, runs the tests.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PACKAGES = build-essential cmake pkg-config libopenblas-dev libjansson-dev libpng-dev zlib1g-dev \
           libdcmtk-dev libxml2-dev
# Only for `make fuzz`: clang with libFuzzer and its OpenMP runtime.
FUZZ_PACKAGES = clang libclang-rt-dev libomp-dev
FUZZ_SECONDS ?= 60

.PHONY: all deps build test test-asan bench demo fuzz clean

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "mammo: installing$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	@sh tests/run.sh $(BUILD)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMM_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh $(ASAN_BUILD)

bench: build
	@sh bench/run.sh $(BUILD)

demo: build
	@sh tools/demo.sh $(BUILD)

# Builds every tests/fuzz/fuzz_*.c with clang + libFuzzer + ASan/UBSan and runs each FUZZ_SECONDS.
fuzz:
	@$(MAKE) --no-print-directory deps PACKAGES="$(PACKAGES) $(FUZZ_PACKAGES)"
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
