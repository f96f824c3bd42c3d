using System.ComponentModel;
using RetriBooru.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>A study's results page (markdown + sample grid) from one or more finished runs, e.g. two seeds.</summary>
public sealed class RunsPageCommand(IAnsiConsole console) : Command<RunsPageCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("Finished run folders of one study (several: e.g. its seeds, reported side by side).")]
        public string[] Runs { get; init; } = [];

        [CommandOption("--out <FILE>")]
        [Description("The page to write, e.g. docs/results/leakage-study.md; its grid goes beside it. An existing page's \"## Reading\" section is kept.")]
        public string Out { get; init; } = "";

        [CommandOption("--split <SPLIT>")]
        [Description("Split shown in the sample grid.")]
        [DefaultValue("seen")]
        public string Split { get; init; } = "seen";

        [CommandOption("--sets <N>")]
        [Description("Reference sets in the sample grid.")]
        [DefaultValue(3)]
        public int Sets { get; init; } = 3;

        [CommandOption("--cell <PX>")]
        [Description("Side of each image in the grid (shrunk until the PNG fits 300 KB).")]
        [DefaultValue(48)]
        public int Cell { get; init; } = 48;

        public override ValidationResult Validate() =>
            Runs.Length == 0 ? ValidationResult.Error("name at least one run folder")
            : string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out FILE.md is required")
            : Sets < 1 ? ValidationResult.Error("--sets must be at least 1")
            : Cell < 16 ? ValidationResult.Error("--cell must be at least 16")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var runs = settings.Runs.Select(RunResults.Load).ToList();
        var grid = ResultsPage.Write(runs, settings.Out, new ResultsPageOptions { GridSplit = settings.Split, GridSets = settings.Sets, GridCell = settings.Cell });
        console.MarkupLine($"results page: [bold]{Markup.Escape(Path.GetFullPath(settings.Out))}[/] ({runs.Count} run(s)); grid: {Markup.Escape(grid)} ({new FileInfo(grid).Length / 1024} KB)");
        return ExitCodes.Ok;
    }
}
