using System.ComponentModel;
using System.Diagnostics;
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

        [CommandOption("--characters <N>")]
        [Description("Number of characters (default 24).")]
        [DefaultValue(24)]
        public int Characters { get; init; } = 24;

        [CommandOption("--seed <S>")]
        [Description("Seed of the world, the images, the splits and the references (default 1234).")]
        [DefaultValue(1234L)]
        public long Seed { get; init; } = 1234;

        [CommandOption("--size <PX>")]
        [Description("Image side in pixels (default 64).")]
        [DefaultValue(64)]
        public int Size { get; init; } = 64;

        [CommandOption("--images-per-character <N>")]
        [Description("Images of each character (default 30).")]
        [DefaultValue(30)]
        public int ImagesPerCharacter { get; init; } = 30;

        [CommandOption("--outfits <N>")]
        [Description("Outfits (clothing identities) per character (default 3).")]
        [DefaultValue(3)]
        public int Outfits { get; init; } = 3;

        [CommandOption("--variant-rate <F>")]
        [Description("Fraction of images that are near-duplicates of another (reposts, shifts, recolours, zooms; default 0.06).")]
        [DefaultValue(0.06)]
        public double VariantRate { get; init; } = 0.06;

        public SynthOptions ToSynthOptions() => new()
        {
            Characters = Characters, ImagesPerCharacter = ImagesPerCharacter, OutfitsPerCharacter = Outfits,
            Size = Size, Seed = Seed, VariantRate = VariantRate,
        };

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out DIR is required");
            try { ToSynthOptions().Validate(); }
            catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
            return base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var result = DatasetProgressDisplay.Run(console, progress =>
            SynthDataset.Create(settings.Out, settings.ToSynthOptions(), settings.ToBuildOptions(settings.Seed), progress, cancellationToken));
        DatasetSummary.Write(console, result.Stats);
        DatasetSummary.WriteReportHint(console, settings.Out, result);
        console.MarkupLine($"Synthetic dataset (seed {settings.Seed}) in [blue]{Markup.Escape(Path.GetFullPath(settings.Out))}[/] in {stopwatch.Elapsed.TotalSeconds:F1} s; ground truth: {SynthAttributesFile.FileName}.");
        return ExitCodes.Ok;
    }
}
