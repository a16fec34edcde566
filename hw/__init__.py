"""Amaranth generator of the XNOR-popcount accelerator (installed as ``bnncore.hw``).

Never imports torch: it consumes a :class:`bnncore.network.FoldedNetwork`.
"""
