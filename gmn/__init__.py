"""Learning on gradients of SIRENs: decomposition, GradMetaNet(++), weight-space baselines."""

from inr.siren import unflatten

from .baselines import FlatGradientMLP, FlatMLPConfig
from .decompose import (
    FeatureNorm,
    NeuronSet,
    Objective,
    decompose_gradients,
    masked_mse,
    mse,
    neuron_layers,
    output,
    permute_neurons,
    permute_params,
    probe_features,
    random_perms,
    rank1_gradients,
)
from .model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig, GradMetaNetWS, to_params
from .weightspace import (
    NPLayer,
    WSNet,
    WSNetConfig,
    cat_channels,
    neuron_channels,
    weight_channels,
    weight_neuron_features,
)

__all__ = [
    "FeatureNorm",
    "FlatGradientMLP",
    "FlatMLPConfig",
    "GradMetaNet",
    "GradMetaNetConfig",
    "GradMetaNetPP",
    "GradMetaNetPPConfig",
    "GradMetaNetWS",
    "NPLayer",
    "NeuronSet",
    "Objective",
    "WSNet",
    "WSNetConfig",
    "cat_channels",
    "decompose_gradients",
    "masked_mse",
    "mse",
    "neuron_channels",
    "neuron_layers",
    "output",
    "permute_neurons",
    "permute_params",
    "probe_features",
    "random_perms",
    "rank1_gradients",
    "to_params",
    "unflatten",
    "weight_channels",
    "weight_neuron_features",
]
