using System.ComponentModel;
using RetriBooru.Modeling;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class ModelInfoCommand(IAnsiConsole console) : Command<ModelInfoCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <NAME>")]
        [Description("Model config: tiny or sd15.")]
        [DefaultValue("tiny")]
        public string Config { get; init; } = "tiny";
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var config = ModelConfigs.Get(settings.Config);
        var components = ModelInfo.Describe(config);
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn(new TableColumn("tensors").RightAligned());
        foreach (var c in components) table.AddRow(c.Component, c.Parameters.ToString("N0"), c.Tensors.ToString());
        table.AddRow("[bold]total[/]", $"[bold]{components.Sum(c => c.Parameters):N0}[/]", components.Sum(c => c.Tensors).ToString());
        console.MarkupLine($"config [bold]{Markup.Escape(config.Name)}[/]: {(config.PixelSpace ? "pixel space" : $"latent space (VAE x{config.Vae!.DownsampleFactor})")}, " +
                           $"{config.ImageSize} px, U-Net channels {string.Join("/", config.Unet.BlockOutChannels)}, {config.Unet.LayersPerBlock} layer(s) per block, " +
                           $"{config.Unet.AttentionHeads} heads, cross-attention {config.Unet.CrossAttentionDim}, tokenizer {config.Tokenizer}");
        if (config.Tokenizer == TokenizerKind.Tags)
            console.MarkupLine($"[grey]text encoder vocabulary shown for {config.TextEncoder.VocabSize} tags; training sizes it to the dataset's tag vocabulary[/]");
        console.Write(table);
        return ExitCodes.Ok;
    }
}
