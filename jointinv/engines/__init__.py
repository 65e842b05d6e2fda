"""Adapters around the forward engines (pyGIMLi, SimPEG).

Engine modules import pyGIMLi or SimPEG at import time, so they are imported
only when a run needs them (keeps ``jointinv --help`` fast).
"""
