using RetriBooru.Runtime;
using System.ComponentModel;
using System.Diagnostics;
using RetriBooru.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Options shared by `run` and `quickstart`.</summary>
public class RunSettings : CommandSettings
{
    [CommandOption("--quick")]
    [Description("Apply the spec's \"quick\" overrides (smoke-test sizes, about a minute).")]
    public bool Quick { get; init; }

    [CommandOption("--out <DIR>")]
    [Description("Folder of run folders.")]
    [DefaultValue("runs")]
    public string Out { get; init; } = "runs";

    [CommandOption("--cache <DIR>")]
    [Description("Content-addressed stage cache shared between runs (default OUT/.cache).")]
    public string? Cache { get; init; }

    [CommandOption("--force")]
    [Description("Recompute every stage instead of reusing finished ones.")]
    public bool Force { get; init; }

    [CommandOption("--threads <N>")]
    [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
    public int Threads { get; init; } = TorchRuntime.DefaultThreads;

    [CommandOption("--device <DEVICE>")]
    [DefaultValue("cpu")]
    public string Device { get; init; } = "cpu";

    [CommandOption("--set <PATH=VALUE>")]
    [Description("Override one spec field (repeatable), e.g. --set seed=2 --set dataset.seed=8 for a study's second seed; VALUE is JSON or a plain word. Recorded in run.json.")]
    public string[] Set { get; init; } = [];
}

public sealed class RunCommand(IAnsiConsole console) : Command<RunCommand.Settings>
{
    public sealed class Settings : RunSettings
    {
        [CommandArgument(0, "<SPEC>")]
        [Description("Experiment spec, e.g. experiments/prompt-dropout-ablation.json.")]
        public string Spec { get; init; } = "";

        [CommandOption("--only-point <K>")]
        [Description("Run only sweep point K (0-based): one job of a scaled-out sweep.")]
        public int? OnlyPoint { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var spec = SpecLoader.Load(settings.Spec, settings.Quick, settings.Set);
        return ExperimentConsole.Run(console, spec, settings, settings.Spec, settings.OnlyPoint, cancellationToken);
    }
}

public sealed class QuickstartCommand(IAnsiConsole console) : Command<QuickstartCommand.Settings>
{
    public sealed class Settings : RunSettings
    {
        [CommandOption("--spec <FILE>")]
        [Description("Use this spec instead of the built-in quickstart (experiments/quickstart.json).")]
        public string? Spec { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var spec = settings.Spec is string file ? SpecLoader.Load(file, settings.Quick, settings.Set)
            : SpecLoader.Parse(BuiltInSpecs.Quickstart, "built-in experiments/quickstart.json", settings.Quick, settings.Set);
        console.MarkupLine($"[bold]RetriBooru Workbench quickstart[/]{(settings.Quick ? " (--quick)" : "")}: RetriBooru-Synth, tiny base model, RetriNet vs the text-only baseline.");
        return ExperimentConsole.Run(console, spec, settings, settings.Spec ?? "experiments/quickstart.json", null, cancellationToken);
    }
}

public sealed class MergeCommand(IAnsiConsole console) : Command<MergeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Run folders to merge (e.g. one per sweep point from a job array).")]
        public string[] Runs { get; init; } = [];

        [CommandOption("--out <DIR>")]
        [DefaultValue("runs")]
        public string Out { get; init; } = "runs";
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var merged = RunMerger.Merge(settings.Runs, settings.Out);
        console.MarkupLine($"merged {settings.Runs.Length} runs ({merged.Evaluations.Count} evaluations) into [bold]{Markup.Escape(merged.Run.Path)}[/]");
        console.MarkupLine($"report: [bold]{Markup.Escape(merged.ReportPath)}[/]");
        return ExitCodes.Ok;
    }
}

/// <summary>Drives an experiment from the console: stage lines, a progress bar on terminals, Ctrl-C, the results table.</summary>
public static class ExperimentConsole
{
    public static int Run(IAnsiConsole console, ExperimentSpec spec, RunSettings settings, string specFile, int? onlyPoint, CancellationToken external)
    {
        using var cancellation = new InterruptSignal(external);
        var clock = Stopwatch.StartNew();
        try
        {
            var options = new RunOptions
            {
                Quick = settings.Quick, RunsRoot = settings.Out, CacheRoot = settings.Cache, OnlyPoint = onlyPoint, Force = settings.Force,
                Threads = settings.Threads, Device = settings.Device, SpecFile = specFile, Overrides = settings.Set,
            };
            var result = WithProgress(console, progress => new ExperimentRunner(spec, options, progress).Run(cancellation.Token));
            PrintTimings(console, result.Timings, clock.Elapsed);
            PrintResults(console, result.Evaluations);
            console.MarkupLine($"run folder: [bold]{Markup.Escape(result.Run.Path)}[/]");
            console.MarkupLine($"report: [bold]{Markup.Escape(result.ReportPath)}[/]");
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            console.MarkupLine($"[yellow]interrupted[/] after {clock.Elapsed.TotalSeconds:F0} s; finished stages and training checkpoints are kept: rerun the same command to resume.");
            return ExitCodes.Interrupted;
        }
    }

    static ExperimentResult WithProgress(IAnsiConsole console, Func<IProgress<RunnerEvent>, ExperimentResult> run)
    {
        if (!console.Profile.Capabilities.Interactive)
        {
            double lastShown = -1;
            string lastStage = "";
            return run(new SyncProgress<RunnerEvent>(e =>
            {
                if (e.Stage != lastStage) { lastStage = e.Stage; lastShown = -1; }
                // Logs: stage boundaries and every 10% of a long stage.
                if (e.Fraction is double f && f < 1 && f - lastShown < 0.1) return;
                lastShown = e.Fraction ?? lastShown;
                console.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(e.Stage)}: {Markup.Escape(e.Message)}");
            }));
        }
        ExperimentResult? result = null;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                result = run(new SyncProgress<RunnerEvent>(e =>
                {
                    if (!tasks.TryGetValue(e.Stage, out var task)) tasks[e.Stage] = task = ctx.AddTask(Markup.Escape(e.Stage), maxValue: 1);
                    if (e.Fraction is double f) task.Value = f;
                    task.Description = Markup.Escape($"{e.Stage}: {e.Message}");
                    if (e.Fraction >= 1) task.StopTask();
                }));
            });
        return result!;
    }

    static void PrintTimings(IAnsiConsole console, IReadOnlyList<StageTiming> timings, TimeSpan total)
    {
        var table = new Table().Title("stages").AddColumns("stage", "seconds", "reused");
        foreach (var t in timings) table.AddRow(Markup.Escape(t.Stage), t.Seconds.ToString("F1"), t.Reused ? "yes" : "");
        table.Caption($"wall time {total.TotalSeconds:F0} s");
        console.Write(table);
    }

    public static void PrintResults(IAnsiConsole console, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var metrics = new[] { "attribute_agreement", "identity", "prompt_consistency", "swd", "leakage", "kid", "readability" }.Where(m => evaluations.Any(e => e.Summary.ContainsKey(m))).ToList();
        var table = new Table().Title("results: mean [[95% CI]]").AddColumns("model", "split");
        foreach (var m in metrics) table.AddColumn(new TableColumn(m).RightAligned());
        foreach (var e in evaluations)
            table.AddRow([Markup.Escape(e.Label), Markup.Escape(e.Split), .. metrics.Select(m => e.Summary.TryGetValue(m, out var s) ? Markup.Escape($"{s.Mean:F3} [{s.Lower:F3}, {s.Upper:F3}]") : "-")]);
        // KID alone does not say whether a value is good: its reference points (same for every model of a split) do.
        if (evaluations.Any(e => e.Summary.ContainsKey("kid")))
            table.Caption(Markup.Escape("kid reference points: " + string.Join("; ", evaluations.Where(e => e.Summary.ContainsKey("kid_floor") && e.Summary.ContainsKey("kid_ceiling"))
                .GroupBy(e => e.Split).Select(g => $"{g.Key} real vs real {g.First().Summary["kid_floor"].Mean:F3}, noise vs real {g.First().Summary["kid_ceiling"].Mean:F3}"))));
        console.Write(table);
    }
}
