namespace RetriBooru.Metrics;

/// <summary>The version of how samples are scored; cached scores and cached yardsticks made under another version are not reused.</summary>
public static class EvaluationProtocol
{
    /// <summary>
    /// Part of every evaluation stage's cache key (<see cref="Experiments.ExperimentRunner.EvaluationProtocolVersion"/>)
    /// and of every <see cref="YardstickCache"/> key: keys hash configs and data, not code, so a change to how samples
    /// or real images are scored must bump this to keep old cached numbers from being reused.
    /// </summary>
    public const string Version = "6 (context prompts, attribute agreement read by a probe trained on new random characters, shifted and mirrored; prompt consistency and readability without the attributes it cannot read; SWD weighted by attributes, KID; intervals resample reference sets)";
}
