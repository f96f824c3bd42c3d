using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using RetriBooru.Diffusion;
using RetriBooru.Metrics;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>`retribooru evaluate`: the evaluation protocol over one trained reference model.</summary>
public sealed class EvaluateCommand(IAnsiConsole console) : Command<EvaluateCommand.Settings>
{
    /// <summary>The verb's options: the protocol (<see cref="EvaluationSettings"/>, one flag per field), the split, and where model, data and results live.</summary>
    public sealed class Settings : ReferenceSamplingSettings
    {
        [CommandOption("--checkpoint <DIR>")]
        [Description("A trained reference model (train's OUT/model).")]
        public string Checkpoint { get; init; } = "";

        [CommandOption("--data <DIR>")]
        [Description("The dataset folder (records, crops, manifests; attributes.jsonl for the probe scores).")]
        public string Data { get; init; } = "";

        [CommandOption("--manifest <FILE>")]
        [Description("A manifest to draw reference sets from instead of DATA/manifests/scheme_<scheme>.jsonl.")]
        public string? Manifest { get; init; }

        [CommandOption("--scheme <a|b>")]
        [Description("The manifest's reference scheme: b (other images) or a (crops of the target, leakage study only).")]
        [DefaultValue("b")]
        public string Scheme { get; init; } = "b";

        [CommandOption("--split <SPLIT>")]
        [Description("seen (held-out images of trained characters), unseen (new characters) or composition (face refs of one outfit, clothes refs of another).")]
        [DefaultValue("seen")]
        public string Split { get; init; } = "seen";

        [CommandOption("--reference-sets|--sets <N>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.ReferenceSets))]
        public int? ReferenceSets { get; init; }

        [CommandOption("--samples-per-reference <K>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.SamplesPerReference))]
        public int? SamplesPerReference { get; init; }

        [CommandOption("--bootstrap-resamples|--bootstrap <N>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.BootstrapResamples))]
        public int? BootstrapResamples { get; init; }

        [CommandOption("--prompt-view <VIEW>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.PromptView))]
        public string? PromptView { get; init; }

        [CommandOption("--identity-quantile <Q>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.IdentityQuantile))]
        public double? IdentityQuantile { get; init; }

        [CommandOption("--identity-view <VIEW>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.IdentityView))]
        public string? IdentityView { get; init; }

        [CommandOption("--probe-world <N>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.ProbeWorld))]
        public int? ProbeWorld { get; init; }

        [CommandOption("--name <NAME>")]
        [Description("Model name in the results table (default: the checkpoint's model kind).")]
        public string? Name { get; init; }

        [CommandOption("--no-images")]
        [Description("Do not write the samples as PNGs.")]
        public bool NoImages { get; init; }

        /// <summary>The protocol these options give (record defaults for every option not given).</summary>
        public EvaluationSettings Protocol() => SettingsBinder.Bind<EvaluationSettings>(this);

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Checkpoint)) return ValidationResult.Error("--checkpoint is required");
            if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
            var protocol = SettingsBinder.Bind<EvaluationSettings>(this, out var wordProblems);
            var problems = wordProblems.Concat(protocol.Problems(f => f.Flag)).ToList();
            if (!SettingsBinder.TryWord<EvaluationSplit>("--split", Split, out _, out var splitProblem)) problems.Add(splitProblem);
            if (!SettingsBinder.TryWord<ReferenceScheme>("--scheme", Scheme, out _, out var schemeProblem)) problems.Add(schemeProblem);
            return problems.Count > 0 ? SettingsBinder.Result(problems) : base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        if (!Directory.Exists(settings.Data)) throw new DirectoryNotFoundException($"{settings.Data}: dataset folder not found");
        using var output = OutputFolderConsole.Open(console, settings.Out, resume: false, settings.Overwrite);
        var (model, branch) = ReferenceModelStore.Load(settings.Checkpoint, TorchRuntime.ResolveDevice(settings.Device));
        using (model)
        {
            var name = string.IsNullOrWhiteSpace(settings.Name) ? branch.Kind.Name() : settings.Name;
            var setup = Stopwatch.StartNew();
            // Baselines always come from the leakage-free scheme-b manifest, also when --scheme a draws the reference sets
            // (calibrating leakage on crops of the target itself would call copying honest).
            var protocol = settings.Protocol();
            using var suite = EvaluationSuite.Create(settings.Data, protocol.Suite(new EvaluationSuiteOptions { ImageSize = model.Config.ImageSize }), settings.Seed,
                new SyncProgress<string>(m => console.MarkupLine($"[grey]{Markup.Escape(m)}[/]")));
            setup.Stop();
            var options = protocol.ForSplit(Words.Parse<EvaluationSplit>(settings.Split), settings.Seed) with
            {
                SaveImages = !settings.NoImages, ManifestPath = settings.Manifest, Scheme = Words.Parse<ReferenceScheme>(settings.Scheme),
            };
            var watch = Stopwatch.StartNew();
            var result = output.Complete(dir => Run(suite, new EvaluatedModel(name, model, branch), settings.Data, options, dir, cancellationToken));
            watch.Stop();
            Print(result, settings.Out);
            int samples = result.Rows.Count(r => r.SampleIndex is not null);
            console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"{result.Sets.Count} sets x {options.SamplesPerReference} samples = {samples} samples in {watch.Elapsed.TotalSeconds:F1} s ({samples / Math.Max(watch.Elapsed.TotalSeconds, 1e-9):F2} samples/s, {options.Sampling.Steps} DDIM steps); suite setup {setup.Elapsed.TotalSeconds:F1} s; {result.Timing}"));
        }
        return ExitCodes.Ok;
    }

    EvaluationResult Run(EvaluationSuite suite, EvaluatedModel model, string datasetDir, EvaluationOptions options, string outDir, CancellationToken cancellationToken)
    {
        if (!console.Profile.Capabilities.Interactive)
        {
            int lastSet = -1;
            var lines = new SyncProgress<(int Done, int Total)>(p =>
            {
                int set = p.Done / options.SamplesPerReference;
                if (p.Done % options.SamplesPerReference == 0 && set != lastSet)
                {
                    lastSet = set;
                    console.MarkupLine($"sampled and scored {p.Done}/{p.Total} samples");
                }
            });
            return suite.Evaluate(model, datasetDir, options, outDir, lines, cancellationToken);
        }
        EvaluationResult? result = null;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var bar = ctx.AddTask("sampling", maxValue: options.ReferenceSets * options.SamplesPerReference);
                var progress = new SyncProgress<(int Done, int Total)>(p =>
                {
                    bar.MaxValue = p.Total;
                    bar.Value = p.Done;
                    bar.Description = $"sample {p.Done}/{p.Total}";
                });
                result = suite.Evaluate(model, datasetDir, options, outDir, progress, cancellationToken);
            });
        return result!;
    }

    void Print(EvaluationResult result, string outDir)
    {
        var table = new Table().Title($"{Markup.Escape(result.Model)} / {Markup.Escape(result.Split)}")
            .AddColumn("metric").AddColumn(new TableColumn("mean").RightAligned()).AddColumn(new TableColumn("95% CI").RightAligned()).AddColumn(new TableColumn("n").RightAligned());
        foreach (var (metric, s) in result.Summary.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            table.AddRow(Markup.Escape(metric), s.Mean.ToString("F4", CultureInfo.InvariantCulture),
                $"[{s.Lower.ToString("F4", CultureInfo.InvariantCulture)}, {s.Upper.ToString("F4", CultureInfo.InvariantCulture)}]".Replace("[", "[[").Replace("]", "]]"),
                s.Count.ToString(CultureInfo.InvariantCulture));
        console.Write(table);
        if (result.Score("kid") is { } kid && result.Score("kid_floor") is { } floor && result.Score("kid_ceiling") is { } ceiling && result.Score("kid_position") is { } position)
            console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"kid {kid.Mean:F4} (lower is better) sits at {position.Mean:F3} of the way from the real-vs-real floor {floor.Mean:F4} to the noise-vs-real ceiling {ceiling.Mean:F4}")));
        foreach (var note in result.Notes) console.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
        console.MarkupLine($"wrote {Markup.Escape(Path.Combine(outDir, "results.csv"))}, {Markup.Escape(Path.Combine(outDir, "results.json"))}");
    }
}
