"""Faces in photos: detection, square crops (and their cache), dlib's aligned chips, landmarks of crops, Yin et al.'s
occlusion."""
