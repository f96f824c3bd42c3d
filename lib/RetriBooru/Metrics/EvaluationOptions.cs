using RetriBooru.Settings;
using RetriBooru.Metrics.Vqa;

namespace RetriBooru.Metrics;

/// <summary>How one model is evaluated (the protocol of <see cref="EvaluationSuite.Evaluate"/>).</summary>
public sealed record EvaluationOptions
{
    /// <summary><c>seen</c>, <c>unseen</c> or <c>composition</c> (see <see cref="EvaluationSplit"/>).</summary>
    public EvaluationSplit Split { get; init; } = EvaluationSplit.Seen;
    /// <summary>How many manifest examples (reference sets) to use, chosen deterministically from <see cref="Seed"/>, spread over characters.</summary>
    public int ReferenceSets { get; init; } = 16;
    /// <summary>K: samples generated per reference set.</summary>
    public int SamplesPerReference { get; init; } = 4;
    /// <summary>Seed of the set choice, of every sample (derived from (Seed, set id, k), recorded in the rows) and of the bootstrap.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>Steps and guidance scales; its Seed is replaced by each sample's own seed.</summary>
    public Diffusion.ReferenceSamplingOptions Sampling { get; init; } = new();
    public int BootstrapResamples { get; init; } = 1000;
    /// <summary>Write the samples as PNGs under outDir/samples/&lt;set&gt;/&lt;k&gt;.png (their paths go in the rows).</summary>
    public bool SaveImages { get; init; } = true;
    /// <summary>The manifest whose examples are the reference sets: <c>b</c> (leakage-free) or <c>a</c> (the leakage study).</summary>
    public ReferenceScheme Scheme { get; init; } = ReferenceScheme.B;
    /// <summary>A manifest file to read instead of the dataset's <c>manifests/scheme_&lt;scheme&gt;.jsonl</c>.</summary>
    public string? ManifestPath { get; init; }
    /// <summary>
    /// The prompt each sample is generated with (<see cref="Data.PromptViews"/>): <c>context</c> by default, so the
    /// character, hair, eye and clothing tags are not in it and identity has to come from the references.
    /// </summary>
    public PromptView PromptView { get; init; } = PromptView.Context;

    public void Validate()
    {
        if (ReferenceSets < 1) throw new ArgumentOutOfRangeException(nameof(ReferenceSets), ReferenceSets, "need at least one reference set");
        if (SamplesPerReference < 1) throw new ArgumentOutOfRangeException(nameof(SamplesPerReference), SamplesPerReference, "need at least one sample per reference set");
        Sampling.Validate();
        if (BootstrapResamples < 1) throw new ArgumentOutOfRangeException(nameof(BootstrapResamples), BootstrapResamples, "need at least one bootstrap resample");
    }
}

/// <summary>How the suite's fixed parts (probe, baselines, embedders) are prepared by <see cref="EvaluationSuite.Create"/>.</summary>
public sealed record EvaluationSuiteOptions
{
    /// <summary>
    /// Manifest scheme whose examples calibrate the baselines: keep the leakage-free <c>b</c> also when evaluating on
    /// scheme-a reference sets (calibrating leakage on crops of the target would make copying look honest).
    /// </summary>
    public ReferenceScheme Scheme { get; init; } = ReferenceScheme.B;
    /// <summary>
    /// Image side the baselines are computed at when the suite is created (the tiny config's 32 px); a model of
    /// another size gets its own baselines, computed on first use and kept.
    /// </summary>
    public int ImageSize { get; init; } = 32;
    /// <summary>Manifest examples (spread over characters) whose cross-character pairs give the identity baseline.</summary>
    public int IdentityBaselineExamples { get; init; } = 24;
    /// <summary>
    /// Quantile of the cross-character identity scores used as SWD's baseline b (0.95 as the metric defines it: unrelated
    /// images get weight ~0). Lower it when same-character and cross-character scores overlap (see the suite description).
    /// </summary>
    public double IdentityBaselineQuantile { get; init; } = 0.95;
    /// <summary>Where generations are compared with each concept's references: <c>whole</c> or <c>best-window</c> (<see cref="EvaluationViews"/>).</summary>
    public IdentityView IdentityView { get; init; } = IdentityView.BestWindow;
    /// <summary>Examples per character averaged into that character's leakage baseline.</summary>
    public int LeakageBaselineExamples { get; init; } = 4;
    /// <summary>
    /// Attribute probe training (its Seed is replaced by the suite's seed), at 32 px: the probe reads images at the
    /// generations' resolution. Shifted up to 2 px and mirrored while training, so it reads a figure wherever it stands
    /// (without, it read held-out hair colour at 0.77 instead of 0.95).
    /// </summary>
    public AttributeProbeOptions Probe { get; init; } = new() { Epochs = 30, ImageSize = 32, ShiftPixels = 2, Mirror = true };
    /// <summary>
    /// Pictures of new random characters the probe trains on instead of the dataset's own (<see cref="EvaluationProbe.Prepare"/>);
    /// 0 = the dataset's pictures. Trained on a few characters, the probe learned who they are: it read the hair colour of
    /// another world's characters at 0.27.
    /// </summary>
    public int ProbeWorldPictures { get; init; } = EvaluationSettings.Default.ProbeWorld;
    /// <summary>
    /// ONNX Runtime intra-op threads of the embedders; null: the runtime's thread count (the --threads the run was given),
    /// as sampling uses. The embedders run between sampling steps, never beside them, and give the same vectors with
    /// any thread count (tested).
    /// </summary>
    public int? EmbedderThreads { get; init; }
    /// <summary><c>exact</c> (the probe's closed vocabularies) or <c>minilm</c> (1 - cosine of MiniLM answer embeddings) for SWD's answer distance.</summary>
    public string AnswerDistance { get; init; } = "exact";
    /// <summary>
    /// What SWD's identity weights are computed from: <c>attributes</c> (attribute agreement of the probe with the
    /// references' ground truth; used when the dataset has ground truth, else the embedder) or <c>embedder</c>.
    /// At 32 px ResNet18 similarity does not separate the synthetic identities, so every weight came out 0.
    /// </summary>
    public string SwdIdentity { get; init; } = "attributes";
    /// <summary>Cache the trained probe in &lt;dataset&gt;/probe/ and reuse it when data and options match.</summary>
    public bool CacheProbe { get; init; } = true;
    /// <summary>
    /// A folder where a probe trained on new characters is shared between datasets (the runner uses RUNS/.cache/probe-world):
    /// its weights do not depend on the dataset, only its measured accuracy does. Null: each dataset trains its own.
    /// </summary>
    public string? ProbeWorldCache { get; init; }
    /// <summary>
    /// Keep the real-image yardsticks (identity, attribute-agreement and leakage baselines, KID's real side, readability's
    /// real mean) in &lt;dataset&gt;/evaluation-cache/ and reuse them when everything they depend on matches (see <see cref="YardstickCache"/>).
    /// </summary>
    public bool CacheBaselines { get; init; } = true;
    /// <summary>
    /// Most real pictures of a split that KID and readability compare samples with (a seeded choice when the split has
    /// more): each costs two ResNet18 passes (the picture and its noise twin of the ceiling), once per suite.
    /// </summary>
    public int QualityImages { get; init; } = 256;
    /// <summary>Bootstrap resamples of the KID intervals (each resample re-averages the kernel matrices, so fewer than the score CIs).</summary>
    public int KidResamples { get; init; } = 200;

    public void Validate()
    {
        if (ImageSize < 8) throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "image size must be at least 8");
        if (IdentityBaselineExamples < 2) throw new ArgumentOutOfRangeException(nameof(IdentityBaselineExamples), IdentityBaselineExamples, "the identity baseline needs at least 2 examples");
        if (IdentityBaselineQuantile is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(IdentityBaselineQuantile), IdentityBaselineQuantile, "the quantile must be in (0, 1)");
        if (LeakageBaselineExamples < 1) throw new ArgumentOutOfRangeException(nameof(LeakageBaselineExamples), LeakageBaselineExamples, "the leakage baseline needs at least 1 example per character");
        if (!Enum.IsDefined(IdentityView)) throw new ArgumentException($"unknown identity view {IdentityView}");
        if (SwdIdentity is not ("attributes" or "embedder")) throw new ArgumentException($"unknown SWD identity source '{SwdIdentity}' (attributes or embedder)");
        if (AnswerDistance is not ("exact" or "minilm")) throw new ArgumentException($"unknown answer distance '{AnswerDistance}' (exact or minilm)");
        if (QualityImages is < 4 or > 100_000) throw new ArgumentOutOfRangeException(nameof(QualityImages), QualityImages, "quality images must be in [4, 100000] (KID's floor needs two halves of at least 2)");
        if (EmbedderThreads is < 1) throw new ArgumentOutOfRangeException(nameof(EmbedderThreads), EmbedderThreads, "embedder threads must be at least 1 (or null: the runtime's threads)");
        if (ProbeWorldPictures is < 0 or > EvaluationProbe.MaxWorldPictures) throw new ArgumentOutOfRangeException(nameof(ProbeWorldPictures), ProbeWorldPictures, $"the probe's world pictures must be in [0, {EvaluationProbe.MaxWorldPictures}]");
        if (KidResamples is < 0 or > 100_000) throw new ArgumentOutOfRangeException(nameof(KidResamples), KidResamples, "KID resamples must be in [0, 100000]");
    }
}

/// <summary>The outcome of one evaluation: rows, per-score summaries, the sets (for sample grids) and notes.</summary>
public sealed record EvaluationResult(
    string Model, string Split,
    IReadOnlyList<ResultRow> Rows,
    IReadOnlyDictionary<string, ScoreSummary> Summary,
    IReadOnlyList<(string SetId, IReadOnlyList<string> ReferencePaths, IReadOnlyList<string> SamplePaths)> Sets,
    IReadOnlyList<string> Notes)
{
    /// <summary>Where the evaluation's time went (sampling, identity views, scoring, image quality); printed, not written to results.json.</summary>
    public string? Timing { get; init; }

    /// <summary>The summary of a score, or null when it was not computed (e.g. probe scores without ground truth).</summary>
    public ScoreSummary? Score(string name) => Summary.TryGetValue(name, out var s) ? s : null;
}
