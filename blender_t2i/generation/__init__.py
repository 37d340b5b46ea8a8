"""One generate job from the scene: depth and colour capture, request, submit, apply results."""
