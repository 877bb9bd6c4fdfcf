# Two commands matter: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := libgl1 libegl1 libgomp1 libusb-1.0-0 libvulkan1 mesa-vulkan-drivers ffmpeg rtsp-server-perl
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

# Reinstall only when the package metadata changes; apt runs only for missing packages.
$(STAMP): pyproject.toml
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[yolo,dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/perception demo

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check perception tests benchmarks
	$(BIN)/ruff format --check perception tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
