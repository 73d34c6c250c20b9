"""Datasets (MNIST, Fashion-MNIST), batches and noise.  CLI: ``python -m scratchnet.data``.

Course: [9. Training the denoiser](../learn/09-training.md) (the data, the noise, the batches).
"""
from .dataloader import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split
from .datasets import (DATASETS, SPLITS, DatasetError, cache_dir, download_dataset,
                       find_dataset_dir, images_to_array, load_dataset, read_idx, search_dirs,
                       verify_dataset)
from .loader import BatchLoader, PatchLoader
from .natural import (NATURAL_SETS, download_natural, find_natural_dir, load_natural,
                      verify_natural)
from .noise import (NOISES, NoiseSpec, add_gaussian_noise, add_noise,
                    add_salt_and_pepper_noise, add_speckle_noise)

__all__ = ["DATASETS", "SPLITS", "DatasetError", "cache_dir", "download_dataset",
           "find_dataset_dir", "images_to_array", "load_dataset", "read_idx", "search_dirs",
           "verify_dataset", "BatchLoader", "PatchLoader", "NATURAL_SETS", "download_natural",
           "find_natural_dir", "load_natural", "verify_natural", "NOISES", "NoiseSpec",
           "add_gaussian_noise", "add_noise", "add_salt_and_pepper_noise", "add_speckle_noise",
           "Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate"]
