"""Networks, identity heads and target-layer capture (docs/method.md §3).

`create_model("vgg16_bn", width=0.25, input_size=112)` builds a VGG whose
`target_layer` is a 14x14 ReLU map (`"iresnet50"` etc.: insightface's iresnets,
target a ReLU after layer3; `"dlib_resnet"`: dlib's pretrained face ResNet);
`FeatureCapture` reaches the target layer of any other `nn.Module` by name.
"""

from explainface.models.capture import FeatureCapture, capture_features, find_module
from explainface.models.dlib_resnet import DlibResNet
from explainface.models.heads import (
    ArcFaceHead,
    CosFaceHead,
    PartialFCHead,
    SoftmaxHead,
    create_head,
    identity_loss,
)
from explainface.models.iresnet import IBasicBlock, IResNetFace
from explainface.models.registry import create_model, describe_model, list_models, register_model
from explainface.models.vgg import EmbeddingHead, VGGFace, cfgs

__all__ = [
    "ArcFaceHead",
    "CosFaceHead",
    "DlibResNet",
    "EmbeddingHead",
    "FeatureCapture",
    "IBasicBlock",
    "IResNetFace",
    "PartialFCHead",
    "SoftmaxHead",
    "VGGFace",
    "capture_features",
    "cfgs",
    "create_head",
    "create_model",
    "describe_model",
    "find_module",
    "identity_loss",
    "list_models",
    "register_model",
]
