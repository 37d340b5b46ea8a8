"""Blender-side core: settings, preferences, backend client, results.

This package's __init__ stays free of bpy so its pure modules (png, jobs) test without Blender;
the extension's root __init__ does the registering.
"""
