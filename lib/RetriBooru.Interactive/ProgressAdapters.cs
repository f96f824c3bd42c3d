using RetriBooru.Runtime;
using RetriBooru.Data;
using RetriBooru.Diffusion;

namespace RetriBooru.Interactive;

/// <summary>Connects the library's progress records to the notebook displays.</summary>
public static class ProgressAdapters
{
    /// <summary>
    /// A <see cref="DiffusionTrainer"/> progress sink that plots (step, loss) on the chart (steps counted from 1)
    /// and, when given, moves a progress bar with the step rate.
    /// </summary>
    public static IProgress<TrainingProgress> ForTraining(this LiveLossChart chart, NotebookProgress? bar = null) =>
        new SyncProgress<TrainingProgress>(p =>
        {
            chart.Report(((int)(p.Step + 1), p.Loss));
            bar?.Report(((p.Step + 1.0) / p.TotalSteps, $"step {p.Step + 1}/{p.TotalSteps}, loss {p.Loss:F4}, {p.StepsPerSecond:F1} steps/s"));
        });

    /// <summary>A dataset-pipeline progress sink (generate, scan, ingest, crops, manifests ...): the bar shows the current stage.</summary>
    public static IProgress<DatasetProgress> ForDataset(this NotebookProgress bar) =>
        new SyncProgress<DatasetProgress>(p => bar.Report(p.Total > 0 ? (p.Fraction, $"{p.Stage} {p.Done}/{p.Total}") : (0, $"{p.Stage} {p.Done}")));

    /// <summary>An experiment-runner progress sink: the bar shows the current stage and its fraction.</summary>
    public static IProgress<Experiments.RunnerEvent> ForRunner(this NotebookProgress bar) =>
        new SyncProgress<Experiments.RunnerEvent>(e => bar.Report((e.Fraction ?? 0, $"{e.Stage}: {e.Message}")));
}
