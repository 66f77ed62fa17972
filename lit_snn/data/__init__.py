"""Datamodules for MNIST, CIFAR-10 and the neuromorphic benchmarks."""
