using System.Reflection;

namespace RetriBooru.Cli;

/// <summary>Specs compiled into the CLI, so `retribooru quickstart` works from any folder.</summary>
public static class BuiltInSpecs
{
    public static string Quickstart => Read("quickstart.json");

    static string Read(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"RetriBooru.Cli.specs.{name}")
                           ?? throw new InvalidOperationException($"built-in spec {name} is missing from the CLI assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
