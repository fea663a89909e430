"""Pictures of what a face network looks at (docs/method.md §8, paper §3.3, Figures 1, 5, 6).

`overlay` draws one channel's top-10% region on a face, `gradcam` attributes the similarity of two faces to the
target layer (Captum), `figures` lays these out as PNG figures, `visualize` is the pipeline behind the command.
"""

from explainface.explanations.gradcam import similarity_cam, similarity_gradcam
from explainface.explanations.overlay import top_overlay

__all__ = ["similarity_cam", "similarity_gradcam", "top_overlay"]
