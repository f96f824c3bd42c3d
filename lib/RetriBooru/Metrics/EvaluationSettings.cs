using System.Text.Json.Serialization;
using RetriBooru.Settings;

namespace RetriBooru.Metrics;

/// <summary>
/// The evaluation protocol (the spec's <c>evaluate</c> section, the <c>evaluate</c> verb's flags): how many reference
/// sets and samples, the sampler, the prompt and how identity is compared. Defined once here with JSON names, defaults,
/// ranges and help; <see cref="ForSplit"/> and <see cref="Suite"/> turn it into the engine's options.
/// </summary>
public sealed record EvaluationSettings
{
    [JsonPropertyName("splits"), Setting("The splits each model is evaluated on (seen, unseen, composition).",
        SpecOnly = "evaluate scores one --split per call")]
    public IReadOnlyList<EvaluationSplit> Splits { get; init; } = [EvaluationSplit.Seen, EvaluationSplit.Unseen];

    [JsonPropertyName("compositions"), Setting("Also evaluate the composition split (face references of one outfit, clothes references of another).",
        SpecOnly = "evaluate --split composition")]
    public bool Compositions { get; init; } = true;

    [JsonPropertyName("reference_sets"), Setting("Reference sets (manifest examples) to evaluate, spread over characters.", Min = 1, Max = 100_000)]
    public int ReferenceSets { get; init; } = 16;

    [JsonPropertyName("samples_per_reference"), Setting("K: samples generated per reference set.", Min = 1, Max = 1000)]
    public int SamplesPerReference { get; init; } = 4;

    [JsonPropertyName("sampling_steps"), Setting("DDIM steps per sample.", Min = 1, Max = 1000)]
    public int SamplingSteps { get; init; } = Diffusion.ReferenceSamplingOptions.Default.Steps;

    [JsonPropertyName("text_guidance"), Setting("Classifier-free guidance scale of the prompt.", Min = 0, Max = 50)]
    public double TextGuidance { get; init; } = Diffusion.ReferenceSamplingOptions.Default.TextScale;

    [JsonPropertyName("reference_guidance"), Setting("Classifier-free guidance scale of the references.", Min = 0, Max = 50)]
    public double ReferenceGuidance { get; init; } = Diffusion.ReferenceSamplingOptions.Default.ReferenceScale;

    [JsonPropertyName("bootstrap_resamples"), Setting("Bootstrap resamples of each 95% CI.", Min = 10, Max = 1_000_000)]
    public int BootstrapResamples { get; init; } = 1000;

    [JsonPropertyName("prompt_view"), Setting("context (prompts without character, hair, eye and clothing tags, so identity must come from the references) or full (the target's whole prompt).")]
    public PromptView PromptView { get; init; } = PromptView.Context;

    [JsonPropertyName("identity_view"), Setting("best-window (best of 14 windows per concept; 2.5x larger gap between same- and other-character scores, measured) or whole (the whole generated image; faster).")]
    public IdentityView IdentityView { get; init; } = IdentityView.BestWindow;

    [JsonPropertyName("identity_quantile"), Setting("Quantile of cross-character identity scores used as SWD's identity baseline.", Min = 1e-6, Max = 1 - 1e-6)]
    public double IdentityQuantile { get; init; } = 0.95;

    [JsonPropertyName("probe_world"), Setting("Pictures of new random characters the attribute probe (attribute agreement, prompt consistency, readability) trains on; 0 = the dataset's own pictures, which teach it who the few characters are rather than what they wear.", Min = 0, Max = EvaluationProbe.MaxWorldPictures)]
    public int ProbeWorld { get; init; } = 4000;

    /// <summary>Every default of the protocol (what the suite options fall back to).</summary>
    public static EvaluationSettings Default { get; } = new();

    /// <summary>The splits a run evaluates, in order: the listed ones, then composition when on.</summary>
    public IEnumerable<EvaluationSplit> RunSplits() =>
        Splits.Concat(Compositions ? [EvaluationSplit.Composition] : []).Distinct();

    /// <summary>The engine's options for one split; <paramref name="seed"/> drives the set choice, every sample and the bootstrap.</summary>
    public EvaluationOptions ForSplit(EvaluationSplit split, long seed) => new()
    {
        Split = split, ReferenceSets = ReferenceSets, SamplesPerReference = SamplesPerReference, Seed = seed,
        Sampling = Sampling(),
        BootstrapResamples = BootstrapResamples, PromptView = PromptView,
    };

    /// <summary>How each sample is drawn (DDIM steps, both guidance scales); `sample` draws the same way.</summary>
    public Diffusion.ReferenceSamplingOptions Sampling(long seed = 0) => new()
    {
        Steps = SamplingSteps, TextScale = TextGuidance, ReferenceScale = ReferenceGuidance, Seed = seed,
    };

    /// <summary>The suite's options this protocol sets (identity view, baseline quantile, the probe's world); the rest keep their defaults.</summary>
    public EvaluationSuiteOptions Suite(EvaluationSuiteOptions? defaults = null) =>
        (defaults ?? new EvaluationSuiteOptions()) with { IdentityView = IdentityView, IdentityBaselineQuantile = IdentityQuantile, ProbeWorldPictures = ProbeWorld };

    /// <summary>Every problem, each naming its field by <paramref name="label"/> (a spec path or a CLI flag).</summary>
    public IReadOnlyList<string> Problems(Func<SettingField, string> label) => SettingFields.RangeProblems(this, label);
}
