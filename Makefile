# bnncore: train -> fold -> export -> generate RTL -> simulate -> synthesize.
# `make demo` runs the main job, `make test` the tests; both set everything up first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bnncore-setup
# Where the datasets are (a folder holding mnist/ and fashion-mnist/). Empty: $BNN_DATA_DIR,
# the user cache (~/.cache/bnncore/datasets), /usr/share/datasets, in that order.
DATA_DIR ?=
DATA_OPT := $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

# The demo network: small enough to train in a minute on two cores. Each choice of options
# trains in its own folder, so that going back to an earlier one finds its run.
DEMO_TOPOLOGY ?= 784-256-256-10
DEMO_EPOCHS   ?= 3
DEMO_RUN      := build/demo/train/$(DEMO_TOPOLOGY)-e$(DEMO_EPOCHS)
DEMO_NET      := build/demo/net
DEMO_DEVICE   ?= ecp5-25f

# `make train` options
DATASET  ?= mnist
TOPOLOGY ?= 784-256-256-256-10
EPOCHS   ?= 10
TRAIN_ARGS ?=

PYTEST_ARGS ?=
# Test processes (pytest-xdist, each taking whole test files, so that a file's module-scoped
# designs and netlists are built once): JOBS=auto for one per core (what CI runs). 1 (the
# default) runs them all in this process.
JOBS ?= 1

# $(call stamp,NAME,VALUE) is build/.params/NAME holding VALUE, rewritten (and so newer than
# what was built from it) only when VALUE changes: a file target that lists it as a
# prerequisite is rebuilt when its options change, not only when its inputs do.
PARAMS := build/.params
same   = $(and $(findstring $(1),$(2)),$(findstring $(2),$(1)))
stamp  = $(if $(call same,$(1)=$(2),$(file <$(PARAMS)/$(1))),,$(shell mkdir -p $(PARAMS))$(file >$(PARAMS)/$(1),$(1)=$(2)))$(PARAMS)/$(1)

.PHONY: setup demo test train rtl sim synth sweep experiment clean distclean

setup: $(STAMP)
	@bash scripts/setup-system.sh

# Re-installs only when the package metadata changed.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,hw,sim,synth,board,cluster,interop]'
	@touch $@

# The main job, as file targets: each step reruns only when its input changed.
demo: $(DEMO_NET)/manifest.json build/rtl/rtl.json
	$(BIN)/bnn eval $(DEMO_NET) $(DATA_OPT)
	$(BIN)/bnn summary $(DEMO_NET)
	$(BIN)/bnn sim build/rtl $(DEMO_NET) --sim verilator $(DATA_OPT)
	$(BIN)/bnn synth build/rtl --device $(DEMO_DEVICE) -o build/synth/$(DEMO_DEVICE)
	$(BIN)/bnn report build
	@echo "training curve: $(DEMO_RUN)/curve.png; folded network: $(DEMO_NET)/; RTL: build/rtl/;" \
		"bitstream and report: build/synth/$(DEMO_DEVICE)/; all of it on one page: build/report.html"

$(DEMO_RUN)/best.pt: | setup
	@$(BIN)/bnn data where mnist $(DATA_OPT) >/dev/null 2>&1 || $(BIN)/bnn data fetch mnist
	$(BIN)/bnn train --dataset mnist --topology $(DEMO_TOPOLOGY) --epochs $(DEMO_EPOCHS) \
		$(DATA_OPT) -o $(DEMO_RUN) --resume

$(DEMO_NET)/manifest.json: $(DEMO_RUN)/best.pt $(call stamp,demo-net,$(DEMO_RUN) $(DATA_DIR))
	$(BIN)/bnn fold $(DEMO_RUN)/best.pt -o $(DEMO_NET) $(DATA_OPT)

# Fast tests by default; SLOW=1 adds the slow ones (what CI runs).
SLOW ?=
test: setup
	$(if $(DATA_DIR),BNN_DATA_DIR=$(abspath $(DATA_DIR)),) $(BIN)/python -m pytest \
		$(if $(SLOW),--durations=20,-m "not slow") $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile) $(PYTEST_ARGS)

# Reruns continue the run of the same options (--resume); TRAIN_ARGS=--force starts it anew.
train: setup
	$(BIN)/bnn train --resume --dataset $(DATASET) --topology $(TOPOLOGY) --epochs $(EPOCHS) $(DATA_OPT) $(TRAIN_ARGS)

# The accelerator of NET (default: the demo network), folded for TARGET_CYCLES per image
# (empty: bnn rtl's default, 256 for an MLP, the fewest a CNN's layers allow; simulation time
# is per cycle, so a faster accelerator also simulates faster).
NET ?= $(DEMO_NET)
TARGET_CYCLES ?=
RTL_ARGS ?=
rtl: build/rtl/rtl.json

build/rtl/rtl.json: $(NET)/manifest.json $(call stamp,rtl,$(NET) $(TARGET_CYCLES) $(RTL_ARGS))
	$(BIN)/bnn rtl $(NET) -o build/rtl $(if $(TARGET_CYCLES),--target-cycles $(TARGET_CYCLES),) --check $(RTL_ARGS)

# Co-simulation of build/rtl with cocotb: SIM=verilator|icarus|ghdl; WAVES=1 for a waveform.
SIM ?= verilator
SIM_IMAGES ?= $(if $(filter verilator,$(SIM)),10000,1000)
WAVES ?=
sim: build/rtl/rtl.json
	$(BIN)/bnn sim build/rtl $(NET) --sim $(SIM) --images $(SIM_IMAGES) $(DATA_OPT) $(if $(WAVES),--waves,)

# Synthesis, place and route and bitstream of build/rtl for DEVICE (up5k, hx8k, ecp5-25f,
# ecp5-85f); the report goes to build/synth/$(DEVICE)/report.json.
# SYNTH_ARGS: more `bnn synth` options, like SYNTH_ARGS="--speed 8 --seed 2".
DEVICE ?= ecp5-25f
SYNTH_ARGS ?=
synth: build/rtl/rtl.json
	$(BIN)/bnn synth build/rtl --device $(DEVICE) -o build/synth/$(DEVICE) $(SYNTH_ARGS)

# Folding sweep of NET on DEVICE: table and LUTs-vs-throughput plot in build/sweep/$(DEVICE)/.
TARGETS ?= 64,128,256,512,1024
sweep: $(NET)/manifest.json | setup
	$(BIN)/bnn sweep $(NET) --device $(DEVICE) --targets $(TARGETS)

# A seed report's experiment (EXPERIMENT=all for every one); MODE=quick|full|tiny.
EXPERIMENT ?= all
MODE ?= quick
experiment: setup
	$(BIN)/bnn experiment $(EXPERIMENT) --mode $(MODE) $(DATA_OPT)

clean:
	rm -rf build

distclean: clean
	rm -rf $(VENV) .pytest_cache .hypothesis
