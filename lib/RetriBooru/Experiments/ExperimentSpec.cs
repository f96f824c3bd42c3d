using System.Text.Json.Serialization;
using RetriBooru.Settings;

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
    [JsonPropertyName("dataset")] public Data.DatasetSettings Dataset { get; init; } = new();
    [JsonPropertyName("base")] public Diffusion.BaseTrainingOptions Base { get; init; } = new();
    [JsonPropertyName("train")] public Diffusion.ReferenceTrainingOptions Train { get; init; } = new();
    [JsonPropertyName("models")] public IReadOnlyList<ModelKind> Models { get; init; } = [ModelKind.RetriNet];
    [JsonPropertyName("schemes")] public IReadOnlyList<ReferenceScheme> Schemes { get; init; } = [ReferenceScheme.B];
    [JsonPropertyName("evaluate")] public Metrics.EvaluationSettings Evaluate { get; init; } = new();
    /// <summary>Axes of the sweep: dotted path -> values. Points are the cartesian product, in axis order.</summary>
    [JsonPropertyName("sweep")] public IReadOnlyDictionary<string, IReadOnlyList<System.Text.Json.JsonElement>> Sweep { get; init; } =
        new Dictionary<string, IReadOnlyList<System.Text.Json.JsonElement>>();
    /// <summary>Overrides for --quick (dotted path -> value).</summary>
    [JsonPropertyName("quick")] public IReadOnlyDictionary<string, System.Text.Json.JsonElement> Quick { get; init; } =
        new Dictionary<string, System.Text.Json.JsonElement>();
    [JsonPropertyName("report")] public ReportSpec Report { get; init; } = new();
}

public sealed record ReportSpec
{
    [JsonPropertyName("title")] public string? Title { get; init; }
    [JsonPropertyName("sample_grids")] public int SampleGrids { get; init; } = 4;
}
