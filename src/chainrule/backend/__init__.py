"""Where arrays live and how single operations run: the array module (NumPy or CuPy) and devices,
row and column reductions, compiled single-operation kernels, CUDA graph capture, and the runtime
around a training run (BLAS threads, Ctrl-C, float errors). Nothing here knows about layers."""
