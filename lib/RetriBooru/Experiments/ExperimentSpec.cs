using System.Text.Json.Serialization;

namespace RetriBooru.Experiments;

/// <summary>
/// A rerunnable experiment, read from experiments/NAME.json. Every field has a default, so a spec only
/// says what differs. A sweep names dotted paths into the spec (e.g. "train.prompt_dropout") and the
/// values to try; the runner trains and scores one point per combination. "quick" holds overrides
/// (same dotted paths) applied by --quick for smoke runs.
/// </summary>
public sealed record ExperimentSpec
{
    [JsonPropertyName("name")] public string Name { get; init; } = "";
    [JsonPropertyName("description")] public string Description { get; init; } = "";
    /// <summary>Master seed: every stage derives its own seed from it and its purpose.</summary>
    [JsonPropertyName("seed")] public long Seed { get; init; } = 1;
    [JsonPropertyName("dataset")] public DatasetSpec Dataset { get; init; } = new();
    [JsonPropertyName("base")] public BaseModelSpec Base { get; init; } = new();
    [JsonPropertyName("train")] public TrainSpec Train { get; init; } = new();
    [JsonPropertyName("models")] public IReadOnlyList<string> Models { get; init; } = ["retrinet"];
    [JsonPropertyName("schemes")] public IReadOnlyList<string> Schemes { get; init; } = ["b"];
    [JsonPropertyName("evaluate")] public EvaluateSpec Evaluate { get; init; } = new();
    /// <summary>Axes of the sweep: dotted path -> values. Points are the cartesian product, in axis order.</summary>
    [JsonPropertyName("sweep")] public IReadOnlyDictionary<string, IReadOnlyList<System.Text.Json.JsonElement>> Sweep { get; init; } =
        new Dictionary<string, IReadOnlyList<System.Text.Json.JsonElement>>();
    /// <summary>Overrides for --quick (dotted path -> value).</summary>
    [JsonPropertyName("quick")] public IReadOnlyDictionary<string, System.Text.Json.JsonElement> Quick { get; init; } =
        new Dictionary<string, System.Text.Json.JsonElement>();
    [JsonPropertyName("report")] public ReportSpec Report { get; init; } = new();
}

public sealed record DatasetSpec
{
    [JsonPropertyName("characters")] public int Characters { get; init; } = 16;
    [JsonPropertyName("outfits")] public int Outfits { get; init; } = 3;
    [JsonPropertyName("images_per_character")] public int ImagesPerCharacter { get; init; } = 30;
    [JsonPropertyName("unseen_characters")] public int UnseenCharacters { get; init; } = 4;
    [JsonPropertyName("size")] public int Size { get; init; } = 32;
    [JsonPropertyName("seed")] public long Seed { get; init; } = 7;
    /// <summary>A Danbooru-style folder to ingest instead of the synthetic world (optional).</summary>
    [JsonPropertyName("source")] public string? Source { get; init; }
}

public sealed record BaseModelSpec
{
    [JsonPropertyName("config")] public string Config { get; init; } = "tiny";
    [JsonPropertyName("steps")] public int Steps { get; init; } = 1500;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 16;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 1e-3;
    /// <summary>
    /// EMA decay of the base weights (the exported model carries the average; null = off). Averaging smooths the
    /// step-to-step noise of a short CPU run; 0.999 suits runs of a few thousand steps.
    /// </summary>
    [JsonPropertyName("ema")] public double? Ema { get; init; }
    /// <summary>After warm-up: <c>constant</c> or <c>cosine</c> (decays to 0 at the last step).</summary>
    [JsonPropertyName("learning_rate_schedule")] public string LearningRateSchedule { get; init; } = Diffusion.TrainingRecipe.LearningRateSchedule;
    /// <summary>Min-SNR-gamma loss weighting (null = plain MSE on the prediction target).</summary>
    [JsonPropertyName("min_snr_gamma")] public double? MinSnrGamma { get; init; } = Diffusion.TrainingRecipe.MinSnrGamma;
    /// <summary>A pretrained checkpoint to use instead of pretraining (e.g. SD1.5 on a GPU machine).</summary>
    [JsonPropertyName("checkpoint")] public string? Checkpoint { get; init; }
}

public sealed record TrainSpec
{
    [JsonPropertyName("steps")] public int Steps { get; init; } = 1000;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 16;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 5e-4;
    [JsonPropertyName("prompt_dropout")] public double PromptDropout { get; init; } = 0.1;
    [JsonPropertyName("reference_dropout")] public double ReferenceDropout { get; init; } = 0.1;
    [JsonPropertyName("masked_loss")] public bool MaskedLoss { get; init; } = true;
    /// <summary>Loss weight of the background under the masked loss (0 = the paper's hard mask).</summary>
    [JsonPropertyName("background_weight")] public double BackgroundWeight { get; init; }
    /// <summary>Learning-rate multiplier of the base U-Net's decoder relative to the new branch (1 = same rate).</summary>
    [JsonPropertyName("decoder_lr_scale")] public double DecoderLearningRateScale { get; init; } = 1.0;
    [JsonPropertyName("face_references")] public int FaceReferences { get; init; } = 2;
    [JsonPropertyName("clothes_references")] public int ClothesReferences { get; init; } = 2;
    /// <summary><c>full</c> (the paper: the whole tag prompt) or <c>context</c> (identity tags removed; see PromptViews).</summary>
    [JsonPropertyName("prompt_view")] public string PromptView { get; init; } = "full";
    /// <summary>Min-SNR-gamma loss weighting of reference training (null = off).</summary>
    [JsonPropertyName("min_snr_gamma")] public double? MinSnrGamma { get; init; } = Diffusion.TrainingRecipe.MinSnrGamma;
}

public sealed record EvaluateSpec
{
    [JsonPropertyName("splits")] public IReadOnlyList<string> Splits { get; init; } = ["seen", "unseen"];
    [JsonPropertyName("reference_sets")] public int ReferenceSets { get; init; } = 16;
    [JsonPropertyName("samples_per_reference")] public int SamplesPerReference { get; init; } = 4;
    [JsonPropertyName("sampling_steps")] public int SamplingSteps { get; init; } = 25;
    [JsonPropertyName("text_guidance")] public double TextGuidance { get; init; } = 3.0;
    [JsonPropertyName("reference_guidance")] public double ReferenceGuidance { get; init; } = 2.0;
    [JsonPropertyName("bootstrap_resamples")] public int BootstrapResamples { get; init; } = 1000;
    [JsonPropertyName("compositions")] public bool Compositions { get; init; } = true;
    /// <summary>
    /// The prompt generations get: <c>context</c> (default: no character, hair, eye or clothing tags, so identity must
    /// come from the references) or <c>full</c> (the target's whole prompt).
    /// </summary>
    [JsonPropertyName("prompt_view")] public string PromptView { get; init; } = "context";
}

public sealed record ReportSpec
{
    [JsonPropertyName("title")] public string? Title { get; init; }
    [JsonPropertyName("sample_grids")] public int SampleGrids { get; init; } = 4;
}
