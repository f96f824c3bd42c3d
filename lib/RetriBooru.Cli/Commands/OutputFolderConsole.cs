using RetriBooru.Runtime;
using Spectre.Console;

namespace RetriBooru.Cli.Commands;

/// <summary>Opens a verb's output folder and prints what was cleaned up after an earlier interrupted run.</summary>
internal static class OutputFolderConsole
{
    public static OutputFolder Open(IAnsiConsole console, string path, bool resume, bool overwrite)
    {
        var output = OutputFolder.Open(path, resume, overwrite);
        foreach (var note in output.Notes) console.MarkupLine($"[grey]{Markup.Escape(note)}[/]");
        return output;
    }
}
