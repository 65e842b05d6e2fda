__version__ = "0.1.0"
#: Version of the HDF5 result layout; bump on incompatible changes.
FORMAT_VERSION = "1.0"
