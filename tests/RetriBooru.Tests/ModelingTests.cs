using RetriBooru.Modeling;
using Xunit;

namespace RetriBooru.Tests;

public class ModelingTests
{
    [Fact]
    public void Sd15_parameter_counts_equal_the_published_models()
    {
        Torch.Load();
        var info = ModelInfo.Describe(ModelConfigs.Sd15).ToDictionary(c => c.Component, c => c.Parameters);
        Assert.Equal(859_520_964L, info["unet"]);
        Assert.Equal(83_653_863L, info["vae"]);
        Assert.Equal(123_060_480L, info["text_encoder"]);
    }

    [Fact]
    public void State_dict_keys_are_diffusers_and_transformers_names()
    {
        Torch.Load();
        using var unet = new UNet2DConditionModel(ModelConfigs.Sd15.Unet, TorchSharp.torch.META);
        var keys = unet.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
            "down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0.bias",
            "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
            "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight",
            "down_blocks.0.attentions.0.proj_in.weight", "down_blocks.0.attentions.0.norm.weight",
            "down_blocks.0.resnets.0.time_emb_proj.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
            "down_blocks.0.downsamplers.0.conv.weight", "down_blocks.3.resnets.1.conv2.weight",
            "mid_block.attentions.0.transformer_blocks.0.norm3.weight", "mid_block.resnets.1.norm1.bias",
            "up_blocks.0.resnets.2.conv_shortcut.weight", "up_blocks.0.upsamplers.0.conv.weight",
            "up_blocks.3.attentions.2.proj_out.bias", "conv_norm_out.weight", "conv_out.bias",
        })
            Assert.Contains(expected, keys);
        Assert.DoesNotContain("up_blocks.3.upsamplers.0.conv.weight", keys);
        Assert.Equal(686, keys.Count);

        using var vae = new AutoencoderKL(ModelConfigs.Sd15.Vae!, TorchSharp.torch.META);
        var vaeKeys = vae.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "encoder.conv_in.weight", "encoder.down_blocks.0.resnets.1.conv2.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
            "encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.mid_block.attentions.0.group_norm.weight",
            "encoder.mid_block.attentions.0.to_q.bias", "encoder.mid_block.attentions.0.to_out.0.weight",
            "encoder.conv_norm_out.weight", "quant_conv.weight", "post_quant_conv.bias",
            "decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.up_blocks.3.resnets.2.norm2.weight",
        })
            Assert.Contains(expected, vaeKeys);

        using var text = new ClipTextModel(ModelConfigs.Sd15.TextEncoder, TorchSharp.torch.META);
        var textKeys = text.state_dict().Keys.ToHashSet();
        foreach (var expected in new[]
        {
            "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
            "text_model.encoder.layers.11.self_attn.q_proj.bias", "text_model.encoder.layers.0.mlp.fc1.weight",
            "text_model.encoder.layers.0.layer_norm2.weight", "text_model.final_layer_norm.bias",
        })
            Assert.Contains(expected, textKeys);
    }
}
