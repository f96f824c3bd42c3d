using System.Text.RegularExpressions;
using RetriBooru.Modeling;

namespace RetriBooru.Weights;

/// <summary>
/// Key names of the original latent-diffusion (CompVis / single-file SD) checkpoints, derived from our
/// diffusers names: <c>model.diffusion_model.*</c> (U-Net), <c>first_stage_model.*</c> (VAE) and
/// <c>cond_stage_model.transformer.*</c> (CLIP). The map is computed from the config (layers per block,
/// levels), so any config, not only SD1.5, round-trips.
/// </summary>
public static partial class LdmKeyMap
{
    public const string UnetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string TextPrefix = "cond_stage_model.transformer.";

    /// <summary>One key's LDM name; <c>Conv1x1</c> marks VAE attention weights stored as [C, C, 1, 1] convolutions there and [C, C] linears here.</summary>
    public readonly record struct LdmName(string Key, bool Conv1x1);

    public static string PrefixOf(string component) => component switch
    {
        "unet" => UnetPrefix,
        "vae" => VaePrefix,
        "text_encoder" => TextPrefix,
        _ => throw new ArgumentException($"unknown component '{component}'"),
    };

    public static LdmName Map(string component, string diffusersKey, ModelConfig config) => component switch
    {
        "unet" => new(UnetPrefix + UnetKey(diffusersKey, config.Unet), false),
        "vae" => VaeKey(diffusersKey, config.Vae ?? throw new ArgumentException("config has no VAE")),
        "text_encoder" => new(TextPrefix + diffusersKey, false),
        _ => throw new ArgumentException($"unknown component '{component}'"),
    };

    [GeneratedRegex(@"^down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)$")] private static partial Regex DownRx();
    [GeneratedRegex(@"^up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)$")] private static partial Regex UpRx();
    [GeneratedRegex(@"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")] private static partial Regex MidRx();

    static string UnetKey(string key, UNetConfig config)
    {
        int per = config.LayersPerBlock + 1;
        if (key.StartsWith("time_embedding.linear_1.", StringComparison.Ordinal)) return "time_embed.0." + key["time_embedding.linear_1.".Length..];
        if (key.StartsWith("time_embedding.linear_2.", StringComparison.Ordinal)) return "time_embed.2." + key["time_embedding.linear_2.".Length..];
        if (key.StartsWith("conv_in.", StringComparison.Ordinal)) return "input_blocks.0.0." + key["conv_in.".Length..];
        if (key.StartsWith("conv_norm_out.", StringComparison.Ordinal)) return "out.0." + key["conv_norm_out.".Length..];
        if (key.StartsWith("conv_out.", StringComparison.Ordinal)) return "out.2." + key["conv_out.".Length..];
        var m = DownRx().Match(key);
        if (m.Success)
        {
            int level = int.Parse(m.Groups[1].Value), j = int.Parse(m.Groups[3].Value);
            string rest = m.Groups[4].Value;
            return m.Groups[2].Value switch
            {
                "resnets" => $"input_blocks.{1 + level * per + j}.0.{ResnetRest(rest)}",
                "attentions" => $"input_blocks.{1 + level * per + j}.1.{rest}",
                _ => $"input_blocks.{1 + level * per + config.LayersPerBlock}.0.{rest.Replace("conv.", "op.")}",
            };
        }
        m = MidRx().Match(key);
        if (m.Success)
        {
            int j = int.Parse(m.Groups[2].Value);
            return m.Groups[1].Value == "resnets" ? $"middle_block.{2 * j}.{ResnetRest(m.Groups[3].Value)}" : $"middle_block.{2 * j + 1}.{m.Groups[3].Value}";
        }
        m = UpRx().Match(key);
        if (m.Success)
        {
            int level = int.Parse(m.Groups[1].Value), j = int.Parse(m.Groups[3].Value);
            string rest = m.Groups[4].Value;
            bool hasAttention = config.UpBlockTypes[level] == "CrossAttnUpBlock2D";
            return m.Groups[2].Value switch
            {
                "resnets" => $"output_blocks.{level * per + j}.0.{ResnetRest(rest)}",
                "attentions" => $"output_blocks.{level * per + j}.1.{rest}",
                _ => $"output_blocks.{level * per + per - 1}.{(hasAttention ? 2 : 1)}.{rest}",
            };
        }
        throw new ArgumentException($"no LDM name for U-Net key '{key}'");
    }

    static string ResnetRest(string rest)
    {
        var dot = rest.IndexOf('.');
        var (name, tail) = (rest[..dot], rest[dot..]);
        return name switch
        {
            "norm1" => "in_layers.0",
            "conv1" => "in_layers.2",
            "time_emb_proj" => "emb_layers.1",
            "norm2" => "out_layers.0",
            "conv2" => "out_layers.3",
            "conv_shortcut" => "skip_connection",
            _ => throw new ArgumentException($"no LDM name for ResNet parameter '{rest}'"),
        } + tail;
    }

    [GeneratedRegex(@"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$")] private static partial Regex VaeBlockRx();
    [GeneratedRegex(@"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")] private static partial Regex VaeMidRx();

    static LdmName VaeKey(string key, VaeConfig config)
    {
        var m = VaeBlockRx().Match(key);
        if (m.Success)
        {
            string part = m.Groups[1].Value, kind = m.Groups[4].Value, rest = m.Groups[6].Value;
            int level = int.Parse(m.Groups[3].Value), j = int.Parse(m.Groups[5].Value);
            // LDM numbers decoder levels from the highest resolution up; diffusers from the lowest.
            int ldmLevel = part == "decoder" ? config.BlockOutChannels.Length - 1 - level : level;
            string local = kind switch
            {
                "resnets" => $"block.{j}.{rest.Replace("conv_shortcut.", "nin_shortcut.")}",
                "downsamplers" => $"downsample.{rest}",
                _ => $"upsample.{rest}",
            };
            return new(VaePrefix + $"{part}.{(part == "encoder" ? "down" : "up")}.{ldmLevel}.{local}", false);
        }
        m = VaeMidRx().Match(key);
        if (m.Success)
        {
            string part = m.Groups[1].Value, rest = m.Groups[4].Value;
            if (m.Groups[2].Value == "resnets")
                return new(VaePrefix + $"{part}.mid.block_{int.Parse(m.Groups[3].Value) + 1}.{rest.Replace("conv_shortcut.", "nin_shortcut.")}", false);
            var dot = rest.IndexOf('.');
            string local = rest.StartsWith("to_out.0.", StringComparison.Ordinal) ? "proj_out" + rest["to_out.0".Length..] : rest[..dot] switch
            {
                "group_norm" => "norm" + rest[dot..],
                "to_q" => "q" + rest[dot..],
                "to_k" => "k" + rest[dot..],
                "to_v" => "v" + rest[dot..],
                _ => throw new ArgumentException($"no LDM name for VAE attention key '{key}'"),
            };
            bool conv = !local.StartsWith("norm", StringComparison.Ordinal) && local.EndsWith(".weight", StringComparison.Ordinal);
            return new(VaePrefix + $"{part}.mid.attn_1.{local}", conv);
        }
        string renamed = key.Replace("encoder.conv_norm_out.", "encoder.norm_out.").Replace("decoder.conv_norm_out.", "decoder.norm_out.");
        if (renamed.StartsWith("encoder.conv_", StringComparison.Ordinal) || renamed.StartsWith("decoder.conv_", StringComparison.Ordinal) ||
            renamed.StartsWith("encoder.norm_out.", StringComparison.Ordinal) || renamed.StartsWith("decoder.norm_out.", StringComparison.Ordinal) ||
            renamed.StartsWith("quant_conv.", StringComparison.Ordinal) || renamed.StartsWith("post_quant_conv.", StringComparison.Ordinal))
            return new(VaePrefix + renamed, false);
        throw new ArgumentException($"no LDM name for VAE key '{key}'");
    }
}
