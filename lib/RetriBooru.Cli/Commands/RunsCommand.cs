using System.ComponentModel;
using RetriBooru.Experiments;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class RunsCommand(IAnsiConsole console) : Command<RunsCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--root <DIR>")]
        [Description("Folder holding run folders.")]
        [DefaultValue("runs")]
        public string Root { get; init; } = "runs";

        [CommandOption("--metric <NAME>")]
        [Description("Summary metric columns to compare (repeatable); default: all.")]
        public string[] Metrics { get; init; } = [];
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var runs = RunIndex.List(settings.Root);
        var unreadable = RunIndex.Unreadable(settings.Root);
        foreach (var (_, problem) in unreadable) console.MarkupLine($"[yellow]unreadable run[/] {Markup.Escape(problem)}");
        if (runs.Count == 0)
        {
            console.MarkupLine($"no runs under [bold]{Markup.Escape(Path.GetFullPath(settings.Root))}[/]");
            return ExitCodes.Ok;
        }
        var metrics = settings.Metrics.Length > 0 ? settings.Metrics
            : runs.SelectMany(r => r.Info.Summary?.Keys ?? []).Distinct().Order(StringComparer.Ordinal).ToArray();
        var table = new Table().AddColumns("run", "status", "seed", "commit");
        foreach (var m in metrics) table.AddColumn(new TableColumn(Markup.Escape(m)).RightAligned());
        foreach (var (_, info) in runs)
        {
            var cells = new List<string> { Markup.Escape(info.Id), Markup.Escape(info.Status), info.Seed.ToString(), Markup.Escape(info.Provenance?.GitCommit?[..Math.Min(10, info.Provenance.GitCommit.Length)] ?? "-") };
            cells.AddRange(metrics.Select(m => info.Summary is not null && info.Summary.TryGetValue(m, out var v) ? v.ToString("F3") : "-"));
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        return ExitCodes.Ok;
    }
}
