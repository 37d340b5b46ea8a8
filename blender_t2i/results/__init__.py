"""Results in Blender: image datablocks and files, and the outputs a result can go to."""
