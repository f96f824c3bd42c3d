using RetriBooru.Settings;
using System.ComponentModel;
using System.Globalization;
using System.Text.Json;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Imaging;
using RetriBooru.Metrics;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary><c>retribooru model diagnose</c>: denoising error per timestep, KID and readability of a text-to-image model's samples.</summary>
public sealed class ModelDiagnoseCommand(IAnsiConsole console) : Command<ModelDiagnoseCommand.Settings>
{
    public sealed class Settings : RuntimeSettings
    {
        [CommandOption("--model <DIR>")]
        [Description("A diffusers-layout model folder (e.g. OUT/model of train-base).")]
        public string Model { get; init; } = "";

        [CommandOption("--data <DIR>")]
        [Description("Dataset folder whose real images (held-out and unseen-character pictures first) are denoised and compared with.")]
        public string Data { get; init; } = "";

        [CommandOption("--images <N>")]
        [DefaultValue(96)]
        public int Images { get; init; } = 96;

        [CommandOption("--samples <N>")]
        [Description("Samples for KID and readability (0 = the error table only).")]
        [DefaultValue(96)]
        public int Samples { get; init; } = 96;

        [CommandOption("--sampling-steps|--steps <N>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.Steps))]
        public int? SamplingSteps { get; init; }

        [CommandOption("--text-guidance|--guidance <SCALE>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.GuidanceScale))]
        public double? TextGuidance { get; init; }

        [CommandOption("--eta <ETA>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.Eta))]
        public double? Eta { get; init; }

        /// <summary>The sampling settings given (the record's defaults for the rest).</summary>
        public SamplingOptions Sampling() => SettingsBinder.Bind<SamplingOptions>(this) with { Seed = Seed };

        [CommandOption("--timesteps <LIST>")]
        [Description("Comma-separated timesteps of the error table (default: 12 spread over the schedule, dense at low noise).")]
        public string? Timesteps { get; init; }

        [CommandOption("--no-readability")]
        [Description("Skip the attribute probe (readability).")]
        public bool NoReadability { get; init; }

        [CommandOption("--probe-world <N>"), SettingHelp(typeof(EvaluationSettings), nameof(EvaluationSettings.ProbeWorld))]
        public int? ProbeWorld { get; init; }

        [CommandOption("--out <DIR>")]
        [Description("Writes diagnose.json, denoising-error.html and samples.png (samples above, real images below) here.")]
        public string? Out { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Model)) return ValidationResult.Error("--model is required");
            if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
            var problems = SettingFields.RangeProblems(Sampling(), f => f.Flag);
            return problems.Count > 0 ? SettingsBinder.Result(problems) : base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        int[]? timesteps = null;
        if (settings.Timesteps is { } list)
        {
            try { timesteps = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
            catch (FormatException) { throw new ArgumentException($"--timesteps: '{list}' is not a comma-separated list of integers"); }
        }
        var options = new DiagnosisOptions
        {
            Images = settings.Images, Samples = settings.Samples, Timesteps = timesteps, Seed = settings.Seed, Readability = !settings.NoReadability,
            Sampling = settings.Sampling(), ProbeWorld = settings.ProbeWorld ?? EvaluationSettings.Default.ProbeWorld,
        };
        options.Validate();
        TorchRuntime.SetDeterministic(true, settings.Threads);
        using var model = ModelStore.LoadDiffusers(settings.Model, TorchRuntime.ResolveDevice(settings.Device));
        string? grid = null;
        var report = ModelDiagnosis.Run(model, settings.Data, options, (samples, real) =>
        {
            if (settings.Out is null) return;
            Directory.CreateDirectory(settings.Out);
            using var g = new ImageGrid(cellSize: 32, padding: 2);
            const int perRow = 16;
            for (int i = 0; i < Math.Min(samples.Count, 64); i += perRow) g.AddRow("samples", samples.Skip(i).Take(perRow));
            for (int i = 0; i < Math.Min(real.Count, 32); i += perRow) g.AddRow("real", real.Skip(i).Take(perRow));
            using var composed = g.Compose();
            grid = Path.Combine(settings.Out, "samples.png");
            AtomicFile.WriteAllBytes(grid, ImageTensor.EncodePng(composed));
        }, new SyncProgress<string>(m => console.MarkupLine($"[grey]{Markup.Escape(m)}[/]")));

        var table = new Table().AddColumns("timestep", "alpha_bar", "log SNR", "model x0 MSE", "naive x0 MSE", "model / naive");
        foreach (var r in report.Errors)
            table.AddRow(r.Timestep.ToString(CultureInfo.InvariantCulture), r.AlphaBar.ToString("F4", CultureInfo.InvariantCulture), r.LogSnr.ToString("F2", CultureInfo.InvariantCulture),
                r.ModelX0Mse.ToString("G4", CultureInfo.InvariantCulture), r.NaiveX0Mse.ToString("G4", CultureInfo.InvariantCulture), r.Ratio.ToString("F3", CultureInfo.InvariantCulture));
        console.Write(table);
        if (report.TagSensitivity.Count > 0)
        {
            // One row per attribute, one column per timestep: swapped-tag error / own-prompt error (1 = the tag is ignored).
            var sensitivityTimesteps = report.TagSensitivity.Select(r => r.Timestep).Distinct().ToList();
            // Inside the figure masks when the dataset has them: a figure's tags change few pixels of the whole picture.
            bool figure = report.TagSensitivity.All(r => r.FigureRatio is not null);
            var sensitivity = new Table().AddColumn("tag swapped (x0 MSE swapped / own prompt" + (figure ? "; whole picture | figure" : "") + ")").AddColumn("images");
            foreach (var t in sensitivityTimesteps) sensitivity.AddColumn($"t = {t}");
            string Cell(TagSensitivityRow? r) => r is null ? "-"
                : figure ? FormattableString.Invariant($"{r.Ratio:F3} | {r.FigureRatio:F3}") : r.Ratio.ToString("F3", CultureInfo.InvariantCulture);
            foreach (var group in report.TagSensitivity.GroupBy(r => r.Attribute))
                sensitivity.AddRow([group.Key, group.First().Images.ToString(CultureInfo.InvariantCulture),
                    .. sensitivityTimesteps.Select(t => Cell(group.FirstOrDefault(r => r.Timestep == t)))]);
            console.Write(sensitivity);
        }
        if (report.Quality is { } q)
            console.WriteLine(FormattableString.Invariant(
                $"KID {q.Kid.Value:F2} [{q.Kid.Lower:F2}, {q.Kid.Upper:F2}] ({q.Kid.Generated} samples vs {q.Kid.Real} real); real vs real (floor) {q.RealFloor.Value:F2}; noise vs real (ceiling) {q.NoiseCeiling.Value:F2}; position in range {q.PositionInRange:F3}"));
        if (report.Readability is { } r2)
        {
            console.WriteLine(FormattableString.Invariant($"readability {r2.Value:F3} (probe agreement with the scene tags: samples {r2.Samples:F3}, real {r2.Real:F3})"));
            foreach (var a in r2.ByAttribute)
                console.WriteLine(FormattableString.Invariant($"  {a.Attribute}: samples {Show(a.Samples)} of {a.SampleChecks}, real {Show(a.Real)} of {a.RealChecks}, ratio {Show(a.Value)}"));
        }
        foreach (var note in report.Notes) console.MarkupLine($"[yellow]note[/] {Markup.Escape(note)}");
        if (settings.Out is not null)
        {
            Directory.CreateDirectory(settings.Out);
            var json = new
            {
                model = Path.GetFullPath(settings.Model), data = Path.GetFullPath(settings.Data), options, commit = GitCommit.Describe(),
                errors = report.Errors.Select(e => new { e.Timestep, e.AlphaBar, e.LogSnr, e.ModelX0Mse, e.NaiveX0Mse, e.Ratio }),
                kid = report.Quality, position_in_range = report.Quality?.PositionInRange, readability = report.Readability, readability_value = report.Readability?.Value,
                tag_sensitivity = report.TagSensitivity.Select(r => new { r.Attribute, r.Timestep, r.Images, r.OwnPromptX0Mse, r.SwappedX0Mse, r.Ratio, r.OwnFigureX0Mse, r.SwappedFigureX0Mse, r.FigureRatio }),
                real_images = report.RealImages, notes = report.Notes,
            };
            AtomicFile.WriteAllText(Path.Combine(settings.Out, "diagnose.json"), JsonSerializer.Serialize(json, WorkbenchJson.Pretty));
            AtomicFile.WriteAllText(Path.Combine(settings.Out, "denoising-error.html"), PlotlyHtml.StandalonePage(Charts.DenoisingError(report.Errors), "Denoising error per timestep"));
            console.MarkupLine($"wrote {Markup.Escape(settings.Out)} (diagnose.json, denoising-error.html{(grid is null ? "" : ", samples.png")})");
        }
        return ExitCodes.Ok;
    }

    static string Show(double? value) => value is double v ? v.ToString("F3", CultureInfo.InvariantCulture) : "-";
}
