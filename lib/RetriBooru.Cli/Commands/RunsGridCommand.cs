using System.ComponentModel;
using RetriBooru.Experiments;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>One PNG comparing the models of a run: per reference set, the references and each model's samples.</summary>
public sealed class RunsGridCommand(IAnsiConsole console) : Command<RunsGridCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("A run folder (printed by quickstart / run).")]
        public string Run { get; init; } = "";

        [CommandOption("--split <SPLIT>")]
        [DefaultValue("unseen")]
        public string Split { get; init; } = "unseen";

        [CommandOption("--sets <N>")]
        [DefaultValue(6)]
        public int Sets { get; init; } = 6;

        [CommandOption("--cell <PX>")]
        [Description("Side of each image in the grid (samples are upscaled).")]
        [DefaultValue(64)]
        public int Cell { get; init; } = 64;

        [CommandOption("--out <FILE>")]
        [Description("PNG to write (default RUN/grid-<split>.png).")]
        public string? Out { get; init; }

        public override ValidationResult Validate() =>
            Sets < 1 ? ValidationResult.Error("--sets must be at least 1")
            : Cell < 8 ? ValidationResult.Error("--cell must be at least 8")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var results = RunResults.Load(settings.Run);
        using var grid = ReportBuilder.ComparisonGrid(results.Evaluations, settings.Split, settings.Sets, settings.Cell)
            ?? throw new InvalidDataException($"{settings.Run}: the '{settings.Split}' evaluations saved no sample images");
        var path = settings.Out ?? Path.Combine(results.Run.Path, $"grid-{settings.Split}.png");
        AtomicFile.WriteAllBytes(path, grid.ToPng(labels: true));
        console.MarkupLine($"grid: {grid.RowCount} rows ({string.Join(", ", grid.RowLabels.Distinct().Where(l => !l.EndsWith(" refs", StringComparison.Ordinal)).Select(Markup.Escape))}) -> [bold]{Markup.Escape(Path.GetFullPath(path))}[/]");
        return ExitCodes.Ok;
    }
}
