using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using RetriBooru.Diffusion;
using RetriBooru.Metrics;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>`retribooru evaluate`: the evaluation protocol over one trained reference model.</summary>
public sealed class EvaluateCommand(IAnsiConsole console) : Command<EvaluateCommand.Settings>
{
    public sealed class Settings : CommandSettings
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
        [DefaultValue("b")]
        public string Scheme { get; init; } = "b";

        [CommandOption("--split <SPLIT>")]
        [Description("seen (held-out images of trained characters), unseen (new characters) or composition (face refs of one outfit, clothes refs of another).")]
        [DefaultValue("seen")]
        public string Split { get; init; } = "seen";

        [CommandOption("--sets <N>")]
        [Description("Reference sets (manifest examples) to evaluate, spread over characters.")]
        [DefaultValue(16)]
        public int Sets { get; init; } = 16;

        [CommandOption("--samples-per-reference <K>")]
        [DefaultValue(4)]
        public int SamplesPerReference { get; init; } = 4;

        [CommandOption("--seed <S>")]
        [Description("Seed of the set choice, of each sample (derived per set and sample, recorded) and of the bootstrap.")]
        [DefaultValue(1L)]
        public long Seed { get; init; } = 1;

        [CommandOption("--steps <N>")]
        [DefaultValue(25)]
        public int Steps { get; init; } = 25;

        [CommandOption("--text-scale <S>")]
        [DefaultValue(3.0)]
        public double TextScale { get; init; } = 3.0;

        [CommandOption("--reference-scale <S>")]
        [DefaultValue(2.0)]
        public double ReferenceScale { get; init; } = 2.0;

        [CommandOption("--bootstrap <N>")]
        [Description("Bootstrap resamples of each 95% CI.")]
        [DefaultValue(1000)]
        public int Bootstrap { get; init; } = 1000;

        [CommandOption("--identity-quantile <Q>")]
        [Description("Quantile of cross-character identity scores used as SWD's identity baseline.")]
        [DefaultValue(0.95)]
        public double IdentityQuantile { get; init; } = 0.95;

        [CommandOption("--identity-view <VIEW>")]
        [Description("best-window (best of 14 windows per concept; 2.5x larger gap between same- and other-character scores, measured) or whole (the whole generated image; faster).")]
        [DefaultValue("best-window")]
        public string IdentityView { get; init; } = "best-window";

        [CommandOption("--prompt-view <VIEW>")]
        [Description("context (default: prompts without character, hair, eye and clothing tags, so identity must come from the references) or full (the target's whole prompt).")]
        [DefaultValue("context")]
        public string PromptView { get; init; } = "context";

        [CommandOption("--name <NAME>")]
        [Description("Model name in the results table (default: the checkpoint's model kind).")]
        public string? Name { get; init; }

        [CommandOption("--no-images")]
        [Description("Do not write the samples as PNGs.")]
        public bool NoImages { get; init; }

        [CommandOption("--out <DIR>")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite")]
        [Description("Replace the earlier results in OUT: the new ones are written to OUT.new and swapped in when the evaluation finishes.")]
        public bool Overwrite { get; init; }

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
        public int Threads { get; init; } = TorchRuntime.DefaultThreads;

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Checkpoint)) return ValidationResult.Error("--checkpoint is required");
            if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out is required");
            if (!EvaluationSplits.All.Contains(Split)) return ValidationResult.Error($"--split '{Split}': use {string.Join(", ", EvaluationSplits.All)}");
            if (Scheme is not ("a" or "b")) return ValidationResult.Error($"--scheme '{Scheme}': use a or b");
            if (!RetriBooru.Data.PromptViews.All.Contains(PromptView)) return ValidationResult.Error($"--prompt-view '{PromptView}': use full or context");
            if (Sets < 1) return ValidationResult.Error("--sets must be at least 1");
            if (SamplesPerReference < 1) return ValidationResult.Error("--samples-per-reference must be at least 1");
            if (Steps < 1) return ValidationResult.Error("--steps must be at least 1");
            if (Bootstrap < 1) return ValidationResult.Error("--bootstrap must be at least 1");
            if (IdentityQuantile is <= 0 or >= 1) return ValidationResult.Error("--identity-quantile must be in (0, 1)");
            if (IdentityView is not ("whole" or "best-window")) return ValidationResult.Error($"--identity-view '{IdentityView}': use whole or best-window");
            if (Threads < 1) return ValidationResult.Error("--threads must be at least 1");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        if (!Directory.Exists(settings.Data)) throw new DirectoryNotFoundException($"{settings.Data}: dataset folder not found");
        var output = OutputFolderConsole.Open(console, settings.Out, resume: false, settings.Overwrite);
        var (model, branch) = ReferenceModelStore.Load(settings.Checkpoint);
        using (model)
        {
            var name = string.IsNullOrWhiteSpace(settings.Name) ? branch.Kind : settings.Name;
            var setup = Stopwatch.StartNew();
            // Baselines always come from the leakage-free scheme-b manifest, also when --scheme a draws the reference sets
            // (calibrating leakage on crops of the target itself would call copying honest).
            using var suite = EvaluationSuite.Create(settings.Data, new EvaluationSuiteOptions { ImageSize = model.Config.ImageSize, IdentityBaselineQuantile = settings.IdentityQuantile, IdentityView = settings.IdentityView }, settings.Seed,
                new SyncProgress<string>(m => console.MarkupLine($"[grey]{Markup.Escape(m)}[/]")));
            setup.Stop();
            var options = new EvaluationOptions
            {
                Split = settings.Split, ReferenceSets = settings.Sets, SamplesPerReference = settings.SamplesPerReference, Seed = settings.Seed,
                Sampling = new ReferenceSamplingOptions { Steps = settings.Steps, TextScale = settings.TextScale, ReferenceScale = settings.ReferenceScale },
                BootstrapResamples = settings.Bootstrap, SaveImages = !settings.NoImages, ManifestPath = settings.Manifest, PromptView = settings.PromptView,
            };
            var watch = Stopwatch.StartNew();
            var result = output.Complete(dir => Run(suite, name, model, branch, settings, options, dir, cancellationToken));
            watch.Stop();
            Print(result, settings.Out);
            int samples = result.Rows.Count(r => r.SampleIndex is not null);
            console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"{result.Sets.Count} sets x {settings.SamplesPerReference} samples = {samples} samples in {watch.Elapsed.TotalSeconds:F1} s ({samples / Math.Max(watch.Elapsed.TotalSeconds, 1e-9):F2} samples/s, {settings.Steps} DDIM steps); suite setup {setup.Elapsed.TotalSeconds:F1} s; {result.Timing}"));
        }
        return ExitCodes.Ok;
    }

    EvaluationResult Run(EvaluationSuite suite, string name, Modeling.DiffusionModel model, Modeling.IReferenceConditionedModel branch, Settings settings, EvaluationOptions options,
        string outDir, CancellationToken cancellationToken)
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
            return suite.Evaluate(name, model, branch, settings.Data, settings.Scheme, options, outDir, lines, cancellationToken);
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
                result = suite.Evaluate(name, model, branch, settings.Data, settings.Scheme, options, outDir, progress, cancellationToken);
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
