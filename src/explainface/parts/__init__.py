"""Face parts: the part labels, part masks from 68 landmarks or parsing maps, the part contact sheet."""
