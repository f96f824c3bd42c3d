using RetriBooru.Settings;
using System.Globalization;
using RetriBooru.Modeling;

namespace RetriBooru.Metrics;

/// <summary>The model under evaluation: the name its rows carry, the diffusion model and its reference branch.</summary>
/// <summary>A reference model under evaluation: its name in the results table, the base and its reference branch.</summary>
public sealed record EvaluatedModel(string Name, DiffusionModel Model, IReferenceConditionedModel Branch)
{
    public int ImageSize => Model.Config.ImageSize;
}

/// <summary>
/// One call of <see cref="EvaluationSuite.Evaluate"/>: the model, the reference sets it is evaluated on, the protocol
/// and the folder the samples and results go to. Every stage reads what it needs from here.
/// </summary>
sealed record EvaluationRun(EvaluatedModel Model, ReferenceSetChoice References, EvaluationOptions Options, string OutDir)
{
    public string Split => Options.Split.Name();
    public int SamplesPerSet => Options.SamplesPerReference;
    public int TotalSamples => References.Sets.Count * Options.SamplesPerReference;
}

/// <summary>Counts samples done (sampled and scored, or skipped with their set) and reports (done, total).</summary>
sealed class EvaluationProgress(IProgress<(int Done, int Total)>? progress, int total)
{
    int _done;

    public void Advance(int samples = 1)
    {
        _done += samples;
        progress?.Report((_done, total));
    }
}

/// <summary>Where an evaluation's time went, printed with its results (not written to results.json).</summary>
sealed record StageTimes(TimeSpan Sampling, int SamplingThreads, TimeSpan IdentityViews, TimeSpan Scoring, TimeSpan ImageQuality)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"sampling {Sampling.TotalSeconds:F1} s ({SamplingThreads} thread(s)), " +
        $"identity views {IdentityViews.TotalSeconds:F1} s, scoring {Scoring.TotalSeconds:F1} s, image quality {ImageQuality.TotalSeconds:F1} s");
}

static class EvaluationPrompts
{
    /// <summary>The tags of a comma-separated prompt (what prompt consistency checks).</summary>
    public static IReadOnlyList<string> Tags(string prompt) => prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
