"""Readers of files on disk: images, identity folders, RecordIO, landmark files, verification pair lists."""
