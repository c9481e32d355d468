"""Where a workload's model comes from: torchvision architectures (classification and dense
heads), user ONNX files, and the builder registry that rebuilds torch modules from artifacts.
"""
