"""Data: face-part labels, landmark files, pair lists, and the embedded synthetic faces."""
