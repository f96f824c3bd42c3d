namespace RetriBooru.Diffusion;

/// <summary>
/// The training recipe measured in docs/development-notes.md ("Sample quality: what was tried"): the defaults that the library's
/// options, the experiment specs and the CLI verbs all take from here, so each has one value everywhere.
/// The schedule half of the recipe (prediction type, noise schedule, timestep spacing) is part of the model config
/// (<see cref="Modeling.ModelConfigs.Tiny"/>), because sampling must read it back from a saved model.
/// </summary>
public static class TrainingRecipe
{
    /// <summary>Learning rate after warm-up.</summary>
    public const Settings.LearningRateSchedule LearningRateSchedule = Settings.LearningRateSchedule.Constant;
    /// <summary>Min-SNR-gamma of the loss weighting.</summary>
    public const double MinSnrGamma = 5;

    /// <summary>The min-SNR gamma a setting puts in effect: 0 and null both mean off (null), as specs and flags say.</summary>
    public static double? EffectiveMinSnrGamma(double? setting) => setting is > 0 ? setting : null;
}
