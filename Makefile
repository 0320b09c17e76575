# camwatch: the user's interface. Every target sets up what it needs.
#
#   make run   [MQTT=host:port] [FRESH=1]  build and start the virtual board (Ctrl-C stops)
#   make fleet N=5                Mosquitto and N virtual boards reporting to it
#   make test                     install everything and run every suite
#   make build   BOARD=esp32cam   the files a board holds, in build/<board>/fs
#   make flash   PORT=/dev/ttyUSB0 [FIRMWARE=firmware.bin | FIRMWARE_URL=https://.../my.zip]
#   make deploy  PORT=/dev/ttyUSB0 copy the app to the board, then soft reset
#   make deploy  HOST=camwatch.local  the same over Wi-Fi (admin password: CAMWATCH_PASSWORD)
#   make install PORT=/dev/ttyUSB0 flash + deploy + provision + print the URL
#   make repl    PORT=/dev/ttyUSB0
#   make test-hw PORT=/dev/ttyUSB0 run tests/vm on the board (deploys the app first)
#   make romfs | firmware MICROPY_DIR=... | bench | clean
#   make soak [SOAK_SECONDS=3600]  the soak test for an hour (2 minutes of it run in `make test`)
#
# Variables: BOARD (default esp32cam, or vboard for the virtual board's port; `make boards` lists them), PORT,
# HTTP_PORT (8080) and HOST (127.0.0.1; 0.0.0.0 for a phone on the LAN) for
# `make run`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
BOARD ?=
PORT ?=
export BOARD PORT HTTP_PORT HOST MICROPY_DIR FIRMWARE FIRMWARE_URL ROMFS MQTT MQTT_PORT N FRESH DNS_PORT

.PHONY: run test venv build boards flash deploy install repl romfs firmware bench clean chromium test-hw mosquitto fleet soak fuzz

venv: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv
	$(PY) -m tools run --board vboard

build: venv
	$(PY) -m tools build $(if $(BOARD),--board $(BOARD))

boards: venv
	@$(PY) -m tools boards

romfs: venv
	$(PY) -m tools romfs $(if $(BOARD),--board $(BOARD))

firmware: venv
	$(PY) -m tools firmware $(if $(BOARD),--board $(BOARD))

flash: venv
	$(PY) -m tools flash $(if $(BOARD),--board $(BOARD)) $(if $(PORT),--port $(PORT)) $(if $(FIRMWARE),--firmware $(FIRMWARE)) $(FLASH_ARGS)

deploy: venv
	$(PY) -m tools deploy $(if $(BOARD),--board $(BOARD)) $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST)) $(DEPLOY_ARGS)

install: venv
	$(PY) -m tools install $(if $(BOARD),--board $(BOARD)) $(if $(PORT),--port $(PORT)) $(INSTALL_ARGS)

repl: venv
	$(PY) -m tools repl $(if $(PORT),--port $(PORT))

test-hw: venv
	$(PY) -m tools test-hw $(if $(BOARD),--board $(BOARD)) $(if $(PORT),--port $(PORT)) $(TESTHW_ARGS)

bench: venv mosquitto chromium
	$(PY) -m tools bench

# The browser tests drive Debian's chromium; install it when it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

fleet: venv mosquitto
	$(PY) -m tools fleet

# The MQTT tests and `make fleet` run Debian's mosquitto (never as a system
# service: each test starts its own on a free port); install it when missing.
# mosquitto-clients: mosquitto_sub, to watch a fleet by hand.
mosquitto:
	@{ test -x /usr/sbin/mosquitto || command -v mosquitto >/dev/null 2>&1; } && \
	  command -v mosquitto_sub >/dev/null 2>&1 || { \
	  echo "installing Debian mosquitto for the MQTT tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    mosquitto mosquitto-clients >/dev/null; }

test: venv chromium mosquitto
	$(PY) -m pytest -q tests

fuzz: venv
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),10000) $(PY) -m pytest -q -s tests/test_fuzz.py

soak: venv
	SOAK_SECONDS=$(or $(SOAK_SECONDS),3600) $(PY) -m pytest -q -s tests/test_soak.py

clean:
	rm -rf build .pytest_cache
