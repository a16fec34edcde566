"""cocotb co-simulation of the generated RTL against the golden model (``bnncore.sim``).

Never imports torch.
"""
