"""medseg: medical image segmentation that configures itself, CPU first.

Stages, each a subpackage, with data flowing one way::

    io -> data -> plan -> preprocess -> train -> infer -> evaluate / report

``interactive`` and ``server`` sit on top. Import the stage you need, e.g.
``from medseg.io import read_image``.
"""

__version__ = "0.1.0"
