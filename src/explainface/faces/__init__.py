"""Faces in photos: detection, square crops (and their cache), landmarks of crops, Yin et al.'s occlusion."""
