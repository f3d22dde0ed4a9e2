"""`mlops images match`: pair reference images with their counterparts in other folders, stitch review strips.

discover.py (which files) · decode.py (Pillow: EXIF orientation, JPEG draft mode, thumbnails) ·
distance.py (distance matrices, vectorised) · assign.py (optimal and greedy one-to-one pairing; pure) ·
layout.py (strip geometry; pure) · stitch.py (drawing the strips) · result.py (the result object, CSV) ·
match.py (the command's work, start to publish) · cli.py (options only).
"""
