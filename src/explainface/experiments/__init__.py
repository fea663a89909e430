"""The experiment (docs/method.md §11): methods x seeds on one budget, evaluated alike, summarised as the paper's
tables.

results.json, the stable part (scripts read it)::

    methods.<method>.seeds[i].<eval set>.<metric>     one run's value (seeds[i].seed is its seed)
    methods.<method>.mean.<eval set>.<metric>         mean over the seeds that finished
    methods.<method>.se.<eval set>.<metric>           standard error of that mean (NaN -> null for one seed)
    methods.<method>.n                                number of finished seeds
    paired.<method>.<eval set>.<metric>.{diff,se,t,p_value,n}   method - reference over the same seeds
    reference                                         the method the others are paired with ("softmax")
    plan, command                                     what ran, and the command that reproduces it

Metrics: accuracy_mean, accuracy_std, auc, eer (verification, Table 3); pe_mean, pe_se (Table 2); ls,
ls_channels (Table 4); ar_mean, ar_std (Table 5); zero_share, at_most_two_share, channel_overlap (docs/method.md §7),
and part_channels (channels per dominant part, per run only). The synthetic default's
evaluation set is called ``synthetic``.
"""

from explainface.experiments.methods import list_methods, method_config, parse_method, register_method
from explainface.experiments.run import ExperimentPlan, run_experiment
from explainface.stats import mean_se, paired_test

__all__ = [
    "ExperimentPlan",
    "list_methods",
    "mean_se",
    "method_config",
    "paired_test",
    "parse_method",
    "register_method",
    "run_experiment",
]
