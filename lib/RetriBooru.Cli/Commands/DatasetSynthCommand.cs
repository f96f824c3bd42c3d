using System.ComponentModel;
using System.Diagnostics;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class DatasetSynthCommand(IAnsiConsole console) : Command<DatasetSynthCommand.Settings>
{
    public sealed class Settings : DatasetBuildSettings
    {
        [CommandOption("--out <DIR>")]
        [Description("Dataset folder to create (the Danbooru-style source goes to DIR/source).")]
        public string Out { get; init; } = "";

        [CommandOption("--characters <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.Characters))]
        public int? Characters { get; init; }

        [CommandOption("--size <PX>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.Size))]
        public int? Size { get; init; }

        [CommandOption("--images-per-character <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.ImagesPerCharacter))]
        public int? ImagesPerCharacter { get; init; }

        [CommandOption("--outfits <N>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.Outfits))]
        public int? Outfits { get; init; }

        [CommandOption("--variant-rate <F>"), SettingHelp(typeof(DatasetSettings), nameof(DatasetSettings.VariantRate))]
        public double? VariantRate { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out DIR is required") : base.Validate();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var dataset = settings.Dataset();
        var result = DatasetProgressDisplay.Run(console, progress =>
            SynthDataset.Create(settings.Out, dataset.Synth(), dataset.Build(settings.Schemes()), progress, cancellationToken));
        DatasetSummary.Write(console, result.Stats);
        DatasetSummary.WriteReportHint(console, settings.Out, result);
        console.MarkupLine($"Synthetic dataset (seed {dataset.Seed}) in [blue]{Markup.Escape(Path.GetFullPath(settings.Out))}[/] in {stopwatch.Elapsed.TotalSeconds:F1} s; ground truth: {SynthAttributesFile.FileName}.");
        return ExitCodes.Ok;
    }
}
