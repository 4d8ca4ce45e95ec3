"""Chapter 3: GPU optimization and cold starts, as a lab.

No GPU is needed: a device model calibrated on measured H200 figures
stands in for the accelerator, and the code the chapter is about (the
batchers, the paged state allocator, the cold-start mitigations) is
real code, measured on that model and on this repository's own
services. Chapter 4 and later chapters import the device model from
here.
"""
