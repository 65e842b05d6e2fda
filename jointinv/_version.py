__version__ = "0.1.0"
#: Version of the HDF5 result layout: the minor number grows with additive changes
#: (files of an older minor version still read), the major with incompatible ones.
#: 1.1: coordinates (dimension scales) in every group of grids or per-datum arrays.
FORMAT_VERSION = "1.1"
