using System.ComponentModel;
using RetriBooru.Experiments;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>
/// A run's trained base model as a folder a spec can name (<c>base.checkpoint</c>), with the record of what trained it:
/// how the quickstart's shipped base (<c>builtin:quickstart-base</c>, <c>models/quickstart-base</c>) is made.
/// </summary>
public sealed class RunsExportBaseCommand(IAnsiConsole console) : Command<RunsExportBaseCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("A finished run folder that trained its base (printed by quickstart / run).")]
        public string Run { get; init; } = "";

        [CommandOption("--out <DIR>")]
        [Description("Where to write the model folder (with pretraining.json); e.g. models/quickstart-base.")]
        public string Out { get; init; } = "";

        [CommandOption("--stage <DIR>")]
        [Description("The base stage's cache folder, for runs made before timings.json recorded stage folders.")]
        public string? Stage { get; init; }

        [CommandOption("--overwrite")]
        [Description("Replace an earlier export in --out (built aside, then swapped in).")]
        public bool Overwrite { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out DIR is required") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        // An interrupted run's base stage is as finished as any (its done.json says so): only run.json is required.
        var run = RunFolder.Open(settings.Run);
        var stage = settings.Stage;
        if (stage is null)
        {
            var timingsPath = Path.Combine(run.Path, "timings.json");
            var timings = File.Exists(timingsPath)
                ? System.Text.Json.JsonSerializer.Deserialize<List<StageTiming>>(RegularFile.ReadAllText(timingsPath, "stage timings"), Data.WorkbenchJson.Lines) ?? []
                : [];
            var timing = timings.FirstOrDefault(t => t.Stage == "base")
                         ?? throw new InvalidDataException($"{settings.Run}: the run trained no base of its own (it was given one with base.checkpoint, or it failed before)");
            stage = timing.Folder ?? throw new InvalidDataException($"{settings.Run}: timings.json does not record the base stage's folder (a run made before 2026-12-02); pass --stage runs/.cache/base/KEY");
        }
        var record = PretrainedBase.Export(stage, settings.Out, run.Path, settings.Overwrite);
        console.MarkupLine($"base exported -> [bold]{Markup.Escape(Path.GetFullPath(settings.Out))}[/] (identity {record.Identity![..16]}, seed {record.Seed}, stage {Markup.Escape(record.Stage)})");
        console.MarkupLine($"name it in a spec as [bold]\"base\": {{ \"checkpoint\": \"{Markup.Escape(settings.Out)}\", ... }}[/] with the same base recipe, world and seed");
        return ExitCodes.Ok;
    }
}
