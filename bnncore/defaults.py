"""Every default of the flow, once: the CLI's options, the Python API's keyword arguments and
the library's parameters read them here. (No imports: `bnn --help` reads it.)"""

#: image buffers between layers (bnn rtl --banks)
BANKS = 2
#: output FIFO entries (bnn rtl --out-depth)
OUT_DEPTH = 2
#: the narrowest signed width of an output bias in the ROMs (wider when a network needs it)
BIAS_BITS = 16
#: cycles per image the automatic folding aims for in an MLP (a CNN's default is the fewest its
#: layers allow)
MLP_TARGET_CYCLES = 256
#: the FPGA of bnn synth and bnn sweep
DEVICE = "ecp5-25f"
#: the simulator and bench of bnn sim
SIMULATOR = "verilator"
BENCH = "cocotb"
#: the foldings bnn sweep synthesises, in cycles per image
SWEEP_TARGETS = (64, 128, 256, 512, 1024)
#: the serial link: the rate bnn run and bnn load talk at, and how long an answer may take
BAUD = 3_000_000
LINK_TIMEOUT_S = 2.0
