using System.ComponentModel;
using RetriBooru.Data;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class DatasetStatsCommand(IAnsiConsole console) : Command<DatasetStatsCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<DIR>")]
        [Description("A built dataset folder (or its manifests/stats.json).")]
        public string Dir { get; init; } = "";
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        DatasetSummary.Write(console, DatasetStats.Read(settings.Dir));
        return ExitCodes.Ok;
    }
}
