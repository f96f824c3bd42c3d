using System.ComponentModel;
using System.Diagnostics;
using RetriBooru.Data.Ingest;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class DatasetBuildCommand(IAnsiConsole console) : Command<DatasetBuildCommand.Settings>
{
    public sealed class Settings : DatasetBuildSettings
    {
        [CommandOption("--source <DIR>")]
        [Description("Danbooru-style folder: images with .txt tags or post metadata JSON; optional X.mask.png and X.face.txt.")]
        public string Source { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Dataset folder to write (records.jsonl, images/, masks/, crops/, manifests/, build_report.jsonl).")]
        public string Out { get; init; } = "";

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Source)) return ValidationResult.Error("--source DIR is required");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out DIR is required");
            return base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var result = DatasetProgressDisplay.Run(console, progress =>
            DatasetBuilder.Build(settings.Source, settings.Out, settings.Dataset().Build(settings.Schemes()), progress, cancellationToken));
        DatasetSummary.Write(console, result.Stats);
        DatasetSummary.WriteReportHint(console, settings.Out, result);
        console.MarkupLine($"Built [blue]{Markup.Escape(Path.GetFullPath(settings.Out))}[/] from {result.Stats.ImagesFound:N0} images in {stopwatch.Elapsed.TotalSeconds:F1} s.");
        if (result.Records.Count == 0) console.MarkupLine("[yellow]No image was kept: see the report for why.[/]");
        return ExitCodes.Ok;
    }
}
