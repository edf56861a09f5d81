// generate with the CUDA backend compiled in (--device cuda): the same tool, built by nvcc.
#include "../generate.cpp"
